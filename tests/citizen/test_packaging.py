"""Packaging: wheel and sdist build and pass twine; the wheel installs with runtime dependencies only and
imports; the ``test`` extra alone brings the emulator and the pytest plugin, which a user's session picks up.

Builds into a temporary directory and installs into a throw-away venv (with uv, from its cache when it can).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import airflow
import pytest

import airflow_provider_nairi

pytestmark = pytest.mark.integration

ROOT = Path(airflow_provider_nairi.__file__).parent.parent
VERSION = airflow_provider_nairi.__version__
TEST_ONLY = ("pytest", "requests_mock", "hypothesis")


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> str:
    result = subprocess.run(
        [str(arg) for arg in args], check=False, capture_output=True, text=True, cwd=cwd, timeout=timeout
    )
    assert result.returncode == 0, f"{args}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    return result.stdout


def uv() -> list[str]:
    found = shutil.which("uv")
    if found:
        return [found]
    if subprocess.run([sys.executable, "-m", "uv", "--version"], check=False, capture_output=True).returncode:
        pytest.skip("uv is not available")
    return [sys.executable, "-m", "uv"]


def uv_install(python: Path, *requirements: str | Path) -> None:
    run(*uv(), "pip", "install", "--quiet", "--python", python, *requirements)


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--outdir", out, ROOT)
    return out


@pytest.fixture(scope="module")
def wheel(dist) -> Path:
    (found,) = dist.glob("*.whl")
    return found


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory, wheel) -> Path:
    """A new venv with the wheel and its runtime dependencies only (Airflow pinned to the one under test)."""
    venv = tmp_path_factory.mktemp("venv")
    run(*uv(), "venv", "--quiet", "--python", sys.executable, venv)
    python = venv / "bin" / "python"
    uv_install(python, wheel, f"apache-airflow=={airflow.__version__}")
    return venv


def test_twine_accepts_wheel_and_sdist(dist):
    files = sorted(dist.iterdir())
    assert sorted(path.suffix for path in files) == [".gz", ".whl"]
    assert "PASSED" in run(sys.executable, "-m", "twine", "check", "--strict", *files)


def test_wheel_holds_the_package_and_both_entry_points_but_no_tests(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = archive.read(f"airflow_provider_nairi-{VERSION}.dist-info/entry_points.txt").decode()
    assert "airflow_provider_nairi/py.typed" in names
    assert "airflow_provider_nairi/get_provider_info.py" in names
    assert not [name for name in names if name.startswith("tests/")]
    provider_entry = "provider_info = airflow_provider_nairi.get_provider_info:get_provider_info"
    assert f"[apache_airflow_provider]\n{provider_entry}" in entry_points
    assert "[pytest11]\nnairi = airflow_provider_nairi.testing" in entry_points


def test_sdist_holds_tests_docs_and_examples(dist):
    (sdist,) = dist.glob("*.tar.gz")
    names = run("tar", "tzf", sdist)
    for part in (
        "pyproject.toml",
        "README.md",
        "tests/conftest.py",
        "docs/design.md",
        "airflow_provider_nairi/",
    ):
        assert f"airflow_provider_nairi-{VERSION}/{part}" in names


def test_wheel_installs_with_runtime_dependencies_only_and_every_registered_module_imports(clean_venv):
    probe = textwrap.dedent(
        """
        import importlib, importlib.util, json, sys
        from airflow_provider_nairi.get_provider_info import get_provider_info

        info = get_provider_info()
        for kind in ("hooks", "operators", "sensors", "triggers"):
            for entry in info.get(kind, []):
                for module in entry["python-modules"]:
                    importlib.import_module(module)
        classes = [conn["hook-class-name"] for conn in info.get("connection-types", [])]
        classes += info.get("extra-links", [])
        for dotted in classes:
            module, _, name = dotted.rpartition(".")
            getattr(importlib.import_module(module), name)
        test_only = [name for name in sys.argv[1:] if importlib.util.find_spec(name)]
        print(json.dumps({"version": info["versions"][0], "test_only": test_only}))
        """
    )
    out = run(clean_venv / "bin" / "python", "-c", probe, *TEST_ONLY, cwd=clean_venv)
    assert json.loads(out.strip().splitlines()[-1]) == {"version": VERSION, "test_only": []}


def test_the_test_extra_brings_the_emulator_and_the_fixture_to_a_users_session(clean_venv, wheel, tmp_path):
    python = clean_venv / "bin" / "python"
    uv_install(python, f"airflow-provider-nairi[test] @ {wheel.as_uri()}")
    (tmp_path / "test_offline.py").write_text(
        textwrap.dedent(
            """
            import requests

            def test_me(nairi_emulator):
                answer = requests.get(
                    nairi_emulator.base_url + "/me", headers={"X-API-Key": nairi_emulator.api_key}, timeout=5
                )
                assert answer.status_code == 200
            """
        )
    )
    out = run(
        python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", tmp_path, tmp_path, cwd=tmp_path
    )
    assert "1 passed" in out
    # Only the emulator and the fixture: none of the provider's own test tools, so no pytest-asyncio warning.
    assert "warning" not in out.lower() and "asyncio" not in out
    ours = ["pytest_asyncio", "pytest_timeout", "requests_mock", "hypothesis", "trustme"]
    probe = "import importlib.util, sys; print([n for n in sys.argv[1:] if importlib.util.find_spec(n)])"
    assert run(python, "-c", probe, *ours, cwd=tmp_path).strip().splitlines()[-1] == "[]"
