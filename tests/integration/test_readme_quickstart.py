"""The README quickstart runs as written: its code block, cut out of README.md, under ``airflow dags test``
against a fresh emulator (no agent in it yet)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from airflow_home import BIN, migrated_env

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.testing import connection_env_var, connection_json

pytestmark = pytest.mark.integration

README = Path(__file__).parents[2] / "README.md"


def quickstart_code() -> str:
    text = README.read_text()
    section = text[text.index("## Quickstart") :]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


def test_the_readme_quickstart_runs_as_written_on_a_fresh_emulator(tmp_path):
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "quickstart.py").write_text(quickstart_code())
    env = migrated_env(tmp_path / "home", dags)
    with run_emulator(turn_latency=0.2) as emulator:
        assert emulator.admin.counts()["agents"] == 0
        env[connection_env_var("nairi_default")] = connection_json(emulator.base_url, emulator.api_key)
        result = subprocess.run(
            [str(BIN / "airflow"), "dags", "test", "nairi_quickstart"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        log = result.stdout + result.stderr
        assert re.search(r"DagRun Finished: dag_id=nairi_quickstart,.* state=success,", log), log[-5000:]
        assert emulator.admin.counts()["agents"] == 1
        assert emulator.admin.counts()["conversations"] == 1
