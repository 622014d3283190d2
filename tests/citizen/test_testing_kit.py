"""The pytest plugin for DAG authors, used the way a user uses it: a test file with no conftest, in its own
pytest session, where the ``nairi_emulator`` fixture arrives through the ``pytest11`` entry point."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

USER_TESTS = """
import json
import os

import pytest
import requests


def me(emulator):
    return requests.get(emulator.base_url + "/me", headers={"X-API-Key": emulator.api_key}, timeout=5)


def test_fixture_serves_the_api_and_sets_the_default_connection(nairi_emulator):
    conn = json.loads(os.environ["AIRFLOW_CONN_NAIRI_DEFAULT"])
    assert conn == {"conn_type": "nairi", "host": nairi_emulator.base_url, "password": nairi_emulator.api_key}
    assert nairi_emulator.base_url.startswith("http://127.0.0.1:")
    answer = me(nairi_emulator)
    assert answer.status_code == 200
    assert "read" in answer.json()["data"]["key"]["scopes"]


def test_the_connection_is_gone_after_the_test():
    assert "AIRFLOW_CONN_NAIRI_DEFAULT" not in os.environ


def test_airflow_reads_the_connection(nairi_emulator):
    from airflow.models.connection import Connection

    conn = Connection.get_connection_from_secrets("nairi_default")
    expected = ("nairi", nairi_emulator.base_url, nairi_emulator.api_key)
    assert (conn.conn_type, conn.host, conn.password) == expected


@pytest.mark.nairi_emulator(conn_id="nairi_staging", turn_latency=0.01)
def test_marker_names_the_connection_and_passes_settings(nairi_emulator):
    assert "AIRFLOW_CONN_NAIRI_DEFAULT" not in os.environ
    assert json.loads(os.environ["AIRFLOW_CONN_NAIRI_STAGING"])["host"] == nairi_emulator.base_url
    assert nairi_emulator.core.settings.turn_latency == 0.01


def test_admin_api_injects_faults_and_logs_requests(nairi_emulator):
    nairi_emulator.admin.set_faults(sequence=["503"])
    assert me(nairi_emulator).status_code == 503
    assert me(nairi_emulator).status_code == 200
    log = nairi_emulator.admin.requests_log()
    assert [entry["path"].rsplit("/", 1)[-1] for entry in log] == ["me", "me"]
    assert nairi_emulator.api_key not in json.dumps(log)


def test_each_test_gets_a_fresh_emulator(nairi_emulator):
    assert nairi_emulator.admin.requests_log() == []
"""


def test_a_users_pytest_session_gets_the_fixture_from_the_entry_point(tmp_path):
    (tmp_path / "test_user_dag.py").write_text(textwrap.dedent(USER_TESTS))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
         "-o", "addopts=", str(tmp_path)],
        check=False, capture_output=True, text=True, cwd=tmp_path, timeout=180,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "6 passed" in result.stdout


def test_loading_the_plugin_imports_neither_airflow_nor_the_emulator():
    code = (
        "import sys, airflow_provider_nairi.testing\n"
        "heavy = ('airflow', 'airflow_provider_nairi.emulator', 'uvicorn', 'fastapi', 'requests')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == []
