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
	@echo "make lint, make unit, make test-compat (unit suite on Airflow $(AIRFLOW_COMPAT_VERSIONS)), make package"
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
	$(BIN)/pytest -q --durations=15

# The whole suite on Airflow 3.3 (integration included). The older lines run in `make test-compat`, a CI step of
# their own (.ci/run): with them `make test` took about 20 minutes, over its 15-minute budget.
test: lint package unit

# Compatibility: the unit suite (integration and chaos excluded) on every older Airflow line the provider claims,
# each in its own venv .venv-<version>, pinned to the newest patch of the line that was tested (README table).
# Airflow 3.3 is the main suite (`make unit`). One line alone: `make test-compat-3.1.8`.
AIRFLOW_COMPAT_VERSIONS ?= 2.11.2 3.0.6 3.1.8 3.2.2
# What a compat venv installs besides Airflow: the provider with its emulator and the project's test tools.
COMPAT_EXTRAS ?= tests
# What one line (COMPAT_REQUIREMENTS_<major.minor>) needs besides. Airflow 3.0 sets no upper bound on
# universal-pathlib and with 0.3 its ObjectStoragePath refuses every URI: installed as its constraints file
# does (3.1 caps it below 0.3). Its UI shows a provider's connection fields only with the FAB provider.
COMPAT_REQUIREMENTS_3.0 := "universal-pathlib<0.3" apache-airflow-providers-fab

.venv-%/.installed: pyproject.toml Makefile
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) venv --quiet --allow-existing --python $(PYTHON) .venv-$*
	$(UV) pip install --quiet --compile-bytecode --python .venv-$*/bin/python \
		"apache-airflow==$*" $(COMPAT_REQUIREMENTS_$(basename $*)) -e ".[$(COMPAT_EXTRAS)]"
	@touch $@
# Kept between runs (make would delete a pattern rule's intermediate target).
.PRECIOUS: .venv-%/.installed

test-compat-%: .venv-%/.installed
	.venv-$*/bin/pytest -q -p no:cacheprovider -m "not integration and not chaos"

test-compat: $(addprefix test-compat-,$(AIRFLOW_COMPAT_VERSIONS))

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
