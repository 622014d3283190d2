"""A pytest plugin for DAG authors: test DAGs that call Nairi offline, against the local emulator.

Installed with the ``test`` extra (``pip install "airflow-provider-nairi[test]"``), the plugin is registered
through the ``pytest11`` entry point, so every pytest session in that environment gets the ``nairi_emulator``
fixture without a ``conftest.py`` line::

    def test_my_dag(nairi_emulator):
        dag_run = my_dag.test()
        assert dag_run.state == "success"

What the fixture does, per test:

- starts the emulator (:func:`airflow_provider_nairi.emulator.run_emulator`) on a free port on 127.0.0.1, in a
  background thread of the test process, with fresh in-memory state;
- points the Airflow connection ``nairi_default`` at it, through the ``AIRFLOW_CONN_NAIRI_DEFAULT``
  environment variable (set with ``monkeypatch``, so it is removed after the test; no metadata database is
  touched);
- yields the running emulator: ``base_url``, ``api_key`` and ``admin`` (its admin API: inject faults, read the
  log of requests it received, count resources, create and revoke keys);
- stops the emulator after the test, whatever the outcome.

Emulator settings and another connection id go in a marker::

    @pytest.mark.nairi_emulator(conn_id="my_nairi", turn_latency=0.01)
    def test_with_fast_agents(nairi_emulator): ...

``conn_id`` (default ``nairi_default``) names the connection to set; every other keyword goes to
``run_emulator`` unchanged (see ``docs/emulator.md`` for the settings).

Loading this module is cheap on purpose (pytest imports it in every session of the environment): it imports
neither Airflow nor the emulator until a test asks for the fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

MARKER = "nairi_emulator"
DEFAULT_CONN_ID = "nairi_default"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(conn_id='{DEFAULT_CONN_ID}', **settings): settings of the nairi_emulator fixture "
        "(conn_id: the Airflow connection it sets; the rest goes to run_emulator)",
    )


def connection_env_var(conn_id: str) -> str:
    """The environment variable Airflow reads a connection from: ``AIRFLOW_CONN_<CONN_ID>``."""
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def connection_json(base_url: str, api_key: str) -> str:
    """A ``nairi`` connection as the JSON Airflow accepts in an ``AIRFLOW_CONN_*`` variable."""
    return json.dumps({"conn_type": "nairi", "host": base_url, "password": api_key})


@pytest.fixture
def nairi_emulator(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A running local Nairi, wired to an Airflow connection for the duration of one test.

    Yields the emulator handle of :func:`airflow_provider_nairi.emulator.run_emulator` (``base_url``,
    ``api_key``, ``admin``). Configure it with ``@pytest.mark.nairi_emulator(conn_id=..., **settings)``.
    """
    from airflow_provider_nairi.emulator import run_emulator  # noqa: PLC0415 (the plugin loads in every session)

    marker = request.node.get_closest_marker(MARKER)
    settings = dict(marker.kwargs) if marker else {}
    conn_id = settings.pop("conn_id", DEFAULT_CONN_ID)
    with run_emulator(**settings) as emulator:
        monkeypatch.setenv(connection_env_var(conn_id), connection_json(emulator.base_url, emulator.api_key))
        yield emulator
