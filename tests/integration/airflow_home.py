"""A throw-away Airflow home with a migrated metadata DB, for ``airflow dags test`` runs in a subprocess."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from airflow_provider_nairi.emulator import run_emulator
from airflow_provider_nairi.testing import connection_env_var, connection_json

BIN = Path(sys.executable).parent


#: The one metadata DB ``airflow db migrate`` made for this test session (see :func:`migrated_env`).
_migrated_db: list[Path] = []


def migrated_db() -> Path:
    """An ``airflow.db`` migrated once per test session (in a temporary home removed at exit): each home
    gets a copy of it, which costs milliseconds where a migration costs 20 s or more."""
    if not _migrated_db:
        home = Path(tempfile.mkdtemp(prefix="nairi-migrated-home-"))
        atexit.register(shutil.rmtree, home, ignore_errors=True)
        env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
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
        _migrated_db.append(home / "airflow.db")
    return _migrated_db[0]


def copy_migrated_home(home: Path) -> None:
    """Make ``home`` a copy of the session's migrated home: its DB, and its ``airflow.cfg`` with the paths
    moved to ``home`` (written here, before any process starts: two processes starting at once in a home
    without one would both write it)."""
    db = migrated_db()
    home.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(db, home / "airflow.db")
    config = (db.parent / "airflow.cfg").read_text()
    (home / "airflow.cfg").write_text(config.replace(str(db.parent), str(home)))


def migrated_env(home: Path, dags_folder: Path) -> dict[str, str]:
    """The environment of an Airflow home at ``home`` reading DAGs from ``dags_folder``, its metadata DB a
    copy of the session's migrated one."""
    copy_migrated_home(home)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


def dags_folder(folder: Path, *dags: Path) -> Path:
    """``folder`` holding links to ``dags`` only: ``airflow dags test`` parses (and serializes) every file of
    its DAGs folder on each run, so a run reads only the DAGs it needs."""
    folder.mkdir(parents=True, exist_ok=True)
    for dag in dags:
        (folder / dag.name).symlink_to(dag)
    return folder


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


def another_home(env: dict[str, str], home: Path) -> dict[str, str]:
    """``env`` (an emulated Airflow home's) for a fresh home at ``home``: same DAGs, connection and settings,
    its own copy of the migrated DB, so runs can go side by side without sharing an SQLite file."""
    copy_migrated_home(home)
    return {**env, "AIRFLOW_HOME": str(home)}


class Background:
    """A process started now whose output goes to a file (a pipe nobody reads would fill and stall it)."""

    def __init__(self, env: dict[str, str], argv: list[str], output: Path) -> None:
        self.env = env
        self.output = output
        with output.open("w") as out:
            self.process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, text=True)

    def log(self, timeout: float = 600) -> str:
        """Its output, once it has ended (killed after ``timeout`` seconds)."""
        try:
            self.process.wait(timeout=timeout)
        finally:
            self.process.kill()
        return self.output.read_text()


def dags_test_in_background(env: dict[str, str], dag_id: str, conf: Any = None) -> Background:
    """``airflow dags test dag_id --conf conf`` started in the home of ``env``; its output in that home."""
    argv = [str(BIN / "airflow"), "dags", "test", dag_id]
    if conf is not None:
        argv += ["--conf", json.dumps(conf)]
    return Background(env, argv, Path(env["AIRFLOW_HOME"]) / f"dags-test-{dag_id}.log")


def task_states(env: dict[str, str], dag_id: str) -> dict[tuple[str, int], str]:
    """``{(task_id, map_index): state}`` of the newest run of ``dag_id`` in the home's SQLite metadata DB."""
    with sqlite3.connect(Path(env["AIRFLOW_HOME"]) / "airflow.db", timeout=10) as db:
        rows = db.execute(
            "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = "
            "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
            (dag_id, dag_id),
        ).fetchall()
    return {(task_id, map_index): state for task_id, map_index, state in rows}
