"""A throw-away Airflow home with a migrated metadata DB, for ``airflow dags test`` runs in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
