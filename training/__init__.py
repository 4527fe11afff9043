"""Jobs data scientists run: generate, train, evaluate, tune, register, publish; the `offers` CLI."""
