# Every target sets up what it needs on a fresh machine: a .venv made with uv, installed with bytecode.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv

export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONDONTWRITEBYTECODE :=

.PHONY: help venv test unit lint demo bench chaos clean test-compat package e2e

help:
	@echo "make demo   - set up, start the local emulator, run the example DAG end to end, show the reply"
	@echo "make test   - set up, run linters and the whole test suite"
	@echo "make bench  - run the benchmarks in bench/ (prints ratios)"
	@echo "make lint, make unit, make test-compat (unit suite on Airflow 2.11), make package"
	@echo "make e2e    - Airflow 3.3 deployed (Postgres, Redis, Local + Celery, UI in Chromium): examples and faults (docs/e2e.md)"
	@echo "make chaos  - 200 conversations with attachments and downloads under 20% injected faults (prints counts)"

$(VENV)/.installed: pyproject.toml Makefile
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(BIN)/python \
		"apache-airflow==$(AIRFLOW_VERSION)" -e ".[dev]"
	@touch $@

venv: $(VENV)/.installed

lint: venv
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy airflow_provider_nairi

unit: venv
	$(BIN)/pytest -q

# The main suite (Airflow 3.3, integration included) runs last, so its summary closes the output.
test: lint package test-compat unit

# Compatibility: the unit suite (integration and chaos excluded) on Airflow 2.11, in a second venv.
COMPAT_VENV ?= .venv-2.11
$(COMPAT_VENV)/.installed: pyproject.toml
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(COMPAT_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(COMPAT_VENV)/bin/python \
		"apache-airflow==2.11.*" -e ".[tests]"
	@touch $@

test-compat: $(COMPAT_VENV)/.installed
	$(COMPAT_VENV)/bin/pytest -q -p no:cacheprovider -m "not integration and not chaos"

# Wheel and sdist into dist/, checked by twine.
package: venv
	rm -rf dist
	$(BIN)/python -m build --quiet --outdir dist .
	$(BIN)/twine check --strict dist/*

demo: venv
	bash scripts/demo.sh

bench: venv
	@for script in bench/[!_]*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

chaos: venv
	$(BIN)/python bench/chaos.py

# End to end: Airflow as separate processes on PostgreSQL and Redis, the UI in headless Chromium (docs/e2e.md).
# Its own venv (the unit venv stays as it is); apt-get installs PostgreSQL, Redis and Chromium when missing.
# celery<5.7: the celery provider imports celery.backends.database.retry, gone in celery 5.7.
E2E_VENV ?= .venv-e2e
E2E_BUDGET ?= 900
$(E2E_VENV)/.installed: pyproject.toml Makefile
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) $(E2E_VENV)
	$(UV) pip install --quiet --compile-bytecode --python $(E2E_VENV)/bin/python \
		"apache-airflow[celery,postgres]==$(AIRFLOW_VERSION)" "celery<5.7" psycopg2-binary redis selenium \
		-e ".[emulator]"
	@touch $@

e2e: $(E2E_VENV)/.installed
	timeout --kill-after=30 $$(( $(E2E_BUDGET) + 180 )) $(E2E_VENV)/bin/python scripts/e2e/run.py --budget $(E2E_BUDGET)

clean:
	rm -rf $(VENV) .venv-* .airflow dist build .pytest_cache .mypy_cache .ruff_cache e2e-out
