"""The FastAPI scorer: reads Redis, applies the rules, never trains."""
