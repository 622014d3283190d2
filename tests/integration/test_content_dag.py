"""example_dags/nairi_content.py runs green under ``airflow dags test`` against the emulator (issue 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.testing import connection_env_var, connection_json

pytestmark = pytest.mark.integration

EXAMPLE_DAGS = Path(__file__).parent.parent.parent / "example_dags"
AIRFLOW = str(Path(sys.executable).parent / "airflow")


def run(args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, capture_output=True, text=True, env=env, timeout=timeout)


def test_content_example_dag_runs_green_against_the_emulator(tmp_path):
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(EXAMPLE_DAGS),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    migrate = run([AIRFLOW, "db", "migrate"], env, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    out = tmp_path / "out"
    with run_emulator(video_delay=0.2, turn_latency=0.1) as emulator:
        env[connection_env_var("nairi_default")] = connection_json(emulator.base_url, emulator.api_key)
        result = run(
            [AIRFLOW, "dags", "test", "nairi_content", "--conf", json.dumps({"output_dir": str(out)})],
            env,
            timeout=420,
        )
        counts = emulator.admin.counts()
    log = result.stdout[-6000:] + result.stderr[-3000:]
    (tmp_path / "dags_test.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, log
    (run_dir,) = out.iterdir()
    assert sorted(p.name for p in run_dir.iterdir()) == ["answer.json", "summary.md"], log
    assert (run_dir / "summary.md").read_text() == "Refunds rose 4% in Q3: late deliveries."
    answer = json.loads((run_dir / "answer.json").read_text())
    assert answer["answer"] and answer["citations"]
    assert (counts["videos"], counts["artifacts"], counts["conversations"]) == (2, 2, 1)
