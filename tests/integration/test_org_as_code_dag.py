"""example_dags/nairi_org_as_code.py runs green twice in a row under ``airflow dags test`` against the
emulator, and the second run reports every resource ``unchanged`` (issue 6)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from airflow.providers.common.compat.sdk import Connection

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.testing import connection_env_var, connection_json

pytestmark = pytest.mark.integration

EXAMPLE_DAGS = Path(__file__).parent.parent.parent / "example_dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")
DB_PASSWORD = "example-db-pass-5e21"
CRM_TOKEN = "example-crm-token-77c3"


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=timeout)


def test_org_as_code_dag_is_green_twice_and_the_second_run_changes_nothing(tmp_path):
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        connection_env_var("nairi_example_db"): Connection(
            conn_id="nairi_example_db", conn_type="postgres", password=DB_PASSWORD
        ).as_json(),
        "AIRFLOW_VAR_NAIRI_EXAMPLE_CRM_TOKEN": CRM_TOKEN,
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    migrate = run([AIRFLOW, "db", "migrate"], env, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    out = tmp_path / "out"
    command = [AIRFLOW, "dags", "test", "nairi_org_as_code", "--conf", json.dumps({"output_dir": str(out)})]
    logs = []
    with run_emulator(turn_latency=0.1) as emulator:
        env[connection_env_var("nairi_default")] = connection_json(emulator.base_url, emulator.api_key)
        for _ in range(2):
            result = run(command, env, timeout=300)
            logs.append(result.stdout + result.stderr)
            assert result.returncode == 0, logs[-1][-6000:]
        counts = emulator.admin.counts()

    summaries = [
        json.loads(path.read_text()) for path in sorted(out.iterdir(), key=lambda p: p.stat().st_mtime)
    ]
    assert len(summaries) == 2, logs[-1][-6000:]
    first, second = summaries
    assert first["actions"] == {
        "vault": "created",
        "env_vars": "updated",
        "agent": "created",
        "scheduled_job": "created",
    }
    assert second["actions"] == dict.fromkeys(first["actions"], "unchanged")
    for summary in summaries:
        assert summary["reply"].startswith("Reply to turn 1: Triage the tickets that arrived overnight.")
    assert first["conversation_id"] != second["conversation_id"]  # each run ran the job anew
    assert (counts["agents"], counts["vaults"], counts["scheduled_jobs"], counts["conversations"]) == (
        1,
        1,
        1,
        2,
    )
    for log in logs:  # the task logs of `airflow dags test`, all tasks, both runs
        assert DB_PASSWORD not in log and CRM_TOKEN not in log
