# Every target sets up what it needs on a fresh machine: a .venv made with uv, installed with bytecode.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
AIRFLOW_VERSION ?= 3.3.2
BIN := $(VENV)/bin
UV := $(PYTHON) -m uv

export AIRFLOW__CORE__LOAD_EXAMPLES := False
export PYTHONDONTWRITEBYTECODE :=

.PHONY: help venv test unit lint demo bench chaos clean test-compat package

help:
	@echo "make demo   - set up, start the local emulator, run the example DAG end to end, show the reply"
	@echo "make test   - set up, run linters and the whole test suite"
	@echo "make bench  - run the benchmarks in bench/ (prints ratios)"
	@echo "make lint, make unit, make test-compat (unit suite on Airflow 2.11), make package"
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

clean:
	rm -rf $(VENV) .venv-* .airflow dist build .pytest_cache .mypy_cache .ruff_cache
