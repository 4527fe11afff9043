"""``make bench``: the product's speed and memory, each figure measured beside a baseline in the same run.

``python -m benchmarks.run [--quick]`` loads the offers endpoint and a minimal floor app with wrk, times
the jobs (generate, train, publish, weekly picks) against the raw libraries, measures Redis's footprint
against ``redis-benchmark``, then writes ``benchmarks/results/latest.json`` and the plots.
"""
