"""A throw-away Airflow home with a migrated metadata DB, for ``airflow dags test`` runs in a subprocess."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.testing import connection_env_var, connection_json

BIN = Path(sys.executable).parent


def migrated_env(home: Path, dags_folder: Path) -> dict[str, str]:
    """The environment of an Airflow home at ``home`` reading DAGs from ``dags_folder``, DB migrated."""
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    migrate = subprocess.run(
        [str(BIN / "airflow"), "db", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return env


def airflow_output(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    """Run ``airflow <args>`` (or ``python <args>`` when the first is ``python``) in ``env``; its output."""
    program = BIN / ("python" if args[0] == "python" else "airflow")
    argv = [str(program), *(args[1:] if args[0] == "python" else args)]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    return result.stdout + result.stderr


@contextlib.contextmanager
def emulated_airflow(home: Path, dags_folder: Path) -> Iterator[tuple[dict[str, str], Any]]:
    """``(env, emulator)``: a migrated Airflow home reading ``dags_folder`` whose ``nairi_default`` connection
    points at a fresh emulator (agents take 0.2 s a turn), for the life of the block."""
    env = migrated_env(home, dags_folder)
    with run_emulator(turn_latency=0.2) as emulator:
        env[connection_env_var("nairi_default")] = connection_json(emulator.base_url, emulator.api_key)
        yield env, emulator


def task_states(env: dict[str, str], dag_id: str) -> dict[tuple[str, int], str]:
    """``{(task_id, map_index): state}`` of the newest run of ``dag_id`` in the home's SQLite metadata DB."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db", timeout=10) as db:
        rows = db.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (dag_id, dag_id),
        ).fetchall()
    return {(task_id, map_index): state for task_id, map_index, state in rows}
