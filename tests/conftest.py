"""Shared test set-up: Airflow runs from a throw-away home, with no metadata DB needed for unit tests."""

from __future__ import annotations

import os
import tempfile

# Before anything imports Airflow: a private AIRFLOW_HOME, no example DAGs, unit-test mode.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="nairi-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")
