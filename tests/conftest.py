"""Shared test set-up: Airflow runs from a throw-away home, with no metadata DB needed for unit tests."""

from __future__ import annotations

import os
import tempfile

import pytest

# Before anything imports Airflow: a private AIRFLOW_HOME, no example DAGs, unit-test mode.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="nairi-airflow-home-")
os.environ.setdefault("AIRFLOW_HOME", _AIRFLOW_HOME)
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "True")


@pytest.fixture(scope="session")
def emulator():
    """One local Nairi for the whole session (fast default latencies); see docs/emulator.md.

    Shared state: create what a test needs and do not count global totals (use a private ``run_emulator()``
    for that). Faults set by a test must be cleared by it (``emulator.admin.clear_faults()``).
    """
    from airflow_provider_nairi.emulator import run_emulator  # noqa: PLC0415 - only sessions that use it pay

    with run_emulator() as running:
        yield running


@pytest.fixture(autouse=True)
def fresh_rate_budgets(monkeypatch):
    """Each test's sync clients start with no shared rate-limit history (the process budget is global; an
    async client's budgets belong to its event loop, fresh per test)."""
    from airflow_provider_nairi.client import sync  # noqa: PLC0415
    from airflow_provider_nairi.client.budget import RateBudgets  # noqa: PLC0415

    monkeypatch.setattr(sync, "PROCESS_BUDGETS", RateBudgets())
