# Makefile: every target a newcomer needs; `make help` lists them.
# A fresh machine needs only Python 3.11+ and make: uv is bootstrapped into .tools/ with pip
# when it is not on PATH, and the project's environment is built from uv.lock.

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := $(shell command -v uv 2>/dev/null || echo .tools/bin/uv)
VENV_BIN := .venv/bin
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.DEFAULT_GOAL := help
.PHONY: help install demo test test-fast lint format docs bench up up-s3 down clean

help: ## list the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | sort | \
		awk 'BEGIN {FS = ":.*## "}; {printf "  %-12s %s\n", $$1, $$2}'

.tools/bin/uv:
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet uv==$(UV_VERSION)

# --compile-bytecode: every process the pipeline starts (flow runs, workers, the ingest's
# spawned processes, the servers) imports Prefect, Polars and Pandera. Where Python may not
# write its bytecode cache (PYTHONDONTWRITEBYTECODE, a read-only image) it compiled them
# again in each one: 2.5 s of imports instead of 1.1 s on a 2-core VM.
.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

install: .venv/.synced ## build .venv from uv.lock (bootstraps uv if needed)

demo: install ## run the whole pipeline on the demo data and print 表1–表6
	$(VENV_BIN)/vetreport demo

# Processes for the tests that may share the machine: one more than this machine's 2 cores,
# as many tests wait on a server much of their time (7:00 with 2, 5:26 with 3, idle).
TEST_PROCESSES ?= 3

test: lint ## lint, then every suite: in parallel processes, then the timing-bound (serial) tests alone
	$(VENV_BIN)/pytest -n $(TEST_PROCESSES) --dist loadfile -m "not serial"
	$(VENV_BIN)/pytest -m serial

test-fast: install ## the quick tests: no server, no browser, no subprocess (under a minute)
	$(VENV_BIN)/pytest -m "not integration and not service and not browser and not backtest" -q -n 2

lint: install ## ruff lint and format check, and the stages' import contract
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/lint-imports --no-cache

docs: install ## regenerate every generated doc (dictionary, indicators, settings table)
	$(VENV_BIN)/vetreport docs

format: install ## apply ruff fixes and formatting
	$(VENV_BIN)/ruff check --fix .
	$(VENV_BIN)/ruff format .

bench: install ## benchmarks that print figures (slow; not part of make test); BENCH=name SCHOOLS=n
	$(if $(SCHOOLS),VETREPORT_BENCH_SCHOOLS=$(SCHOOLS) )$(VENV_BIN)/python -m benchmarks.run $(BENCH)

up: install ## start the local server, the served deployments and the var/bucket watcher
	$(VENV_BIN)/vetreport demo-data --out var/bucket
	$(VENV_BIN)/vetreport up --bucket var/bucket

up-s3: install ## the same on a local SeaweedFS: bucket s3://vetreport, data in var/seaweedfs/
	$(VENV_BIN)/vetreport up --s3 --demo-data

down: install ## stop the local Prefect server and file server that make demo or up started
	$(VENV_BIN)/vetreport server stop

clean: ## remove the local bucket, server state and environments
	rm -rf var .venv .tools .pytest_cache .ruff_cache
