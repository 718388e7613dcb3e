# The two commands of the README (`make demo`, `make test`) create the virtualenv they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the main job end to end against the embedded sandbox payer.
demo: $(STAMP)
	$(BIN)/fhir-pa demo

## Run the test suite (unit + loopback integration).
test: $(STAMP)
	$(BIN)/python -m pytest -q

## Static checks: ruff and mypy --strict.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

## Benchmarks: print figures (client CPU per request or call, ratio to raw httpx in the same run).
bench: $(STAMP)
	$(BIN)/python -m benchmarks.submit_bench
	$(BIN)/python -m benchmarks.crd_bench
	$(BIN)/python -m benchmarks.batch_bench --orders 2000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
