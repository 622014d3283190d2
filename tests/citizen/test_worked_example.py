"""docs/testing-your-dags.md, run as written: its files go into a fresh project, the documented set-up
commands run, and that project's pytest session must pass. If the page drifts from the code, this fails."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_nairi

pytestmark = pytest.mark.integration

PAGE = Path(airflow_provider_nairi.__file__).parent.parent / "docs" / "testing-your-dags.md"
FILE_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", re.DOTALL)
BIN = Path(sys.executable).parent


def write_project(root: Path) -> list[str]:
    """Write each ``<!-- file: path -->`` block of the page under ``root`` (blocks for one path append)."""
    written = []
    for relative, body in FILE_BLOCK.findall(PAGE.read_text()):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as out:
            out.write(("\n\n" if relative in written else "") + body)
        written.append(relative)
    return sorted(set(written))


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, check=False, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout
    )


def test_the_worked_example_passes_as_documented(tmp_path):
    files = write_project(tmp_path)
    assert files == ["dags/ask_support_agent.py", "pytest.ini", "tests/test_ask_support_agent.py"]
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(tmp_path / ".airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(tmp_path / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    migrate = run([str(BIN / "airflow"), "db", "migrate"], tmp_path, env, timeout=300)
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    session = run(
        [sys.executable, "-m", "pytest", "tests/", "-q", "-p", "no:cacheprovider"], tmp_path, env, 420
    )
    assert session.returncode == 0, session.stdout[-5000:] + session.stderr[-2000:]
    assert "2 passed" in session.stdout
