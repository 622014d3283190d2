"""What a user sees from the ``airflow`` command: the provider, its hook, triggers, links and connection form
are registered, and ``airflow connections test`` talks to the emulator. Each command runs in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_nairi import __version__
from airflow_provider_nairi.get_provider_info import get_provider_info
from airflow_provider_nairi.testing import connection_json

pytestmark = pytest.mark.integration

AIRFLOW = str(Path(sys.executable).parent / "airflow")
INFO = get_provider_info()


def user_env(**extra: str) -> dict[str, str]:
    """This session's environment as a user's shell has it (no unit-test mode: it logs to stdout)."""
    env = {**os.environ, **extra}
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    return env


def airflow(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [AIRFLOW, *args], check=False, capture_output=True, text=True, env=env or user_env(), timeout=180
    )


def ours(command: str) -> list[dict]:
    """Rows of ``airflow providers <command> -o json`` that mention this provider."""
    result = airflow("providers", command, "-o", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "get_connection_form_widgets" not in result.stderr  # the 3.2+ declarative form is used, no warning
    return [row for row in json.loads(result.stdout) if "nairi" in json.dumps(row)]


def test_providers_list_shows_the_package_and_its_version():
    (row,) = ours("list")
    assert (row["package_name"], row["version"]) == ("airflow-provider-nairi", __version__)


def test_providers_hooks_maps_the_nairi_connection_type_to_the_hook():
    (row,) = ours("hooks")
    assert row["connection_type"] == "nairi"
    assert row["class"] == "airflow_provider_nairi.hooks.nairi.NairiHook"
    assert row["hook_name"] == "Nairi"


def test_providers_triggers_and_links_list_every_registered_one():
    listed_triggers = {module for entry in INFO["triggers"] for module in entry["python-modules"]}
    assert {row["class"] for row in ours("triggers")} == listed_triggers
    assert {row["extra_link_class_name"] for row in ours("links")} == set(INFO["extra-links"])


def test_connection_form_has_every_extra_and_the_relabelled_fields():
    widgets = {row["connection_parameter_name"] for row in ours("widgets")}
    fields = INFO["connection-types"][0]["conn-fields"]
    assert widgets == {f"extra__nairi__{name}" for name in fields}
    assert ours("behaviours") == [{"field_behaviours": "nairi"}]


def test_connections_test_reaches_the_emulator_and_reports_a_revoked_key(nairi_emulator):
    env = user_env(
        AIRFLOW_CONN_NAIRI_DEFAULT=connection_json(nairi_emulator.base_url, nairi_emulator.api_key),
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
    )
    good = airflow("connections", "test", "nairi_default", env=env)
    assert good.returncode == 0, good.stdout + good.stderr[-3000:]
    assert "Connection success!" in good.stdout
    assert [entry["path"].rsplit("/", 1)[-1] for entry in nairi_emulator.admin.requests_log()] == ["me"]

    nairi_emulator.admin.revoke_key(nairi_emulator.api_key)
    revoked = airflow("connections", "test", "nairi_default", env=env)
    assert revoked.returncode != 0
    assert "Connection failed!" in revoked.stdout
    assert "401 unauthorized" in revoked.stdout
    assert nairi_emulator.api_key not in revoked.stdout + revoked.stderr


def test_airflow_sees_the_task_decorators_and_task_dot_nairi_resolves_to_them():
    result = airflow("providers", "get", "airflow-provider-nairi", "--full", "-o", "json")
    assert result.returncode == 0, result.stderr[-3000:]
    (info,) = json.loads(result.stdout)
    assert info["task-decorators"] == [
        {"name": "nairi", "class-name": "airflow_provider_nairi.decorators.nairi.nairi_task"},
        {"name": "nairi_branch", "class-name": "airflow_provider_nairi.decorators.nairi.nairi_branch_task"},
    ]
    code = (
        "from airflow.sdk import task\n"
        "print(task.nairi.__module__, task.nairi.__name__, task.nairi_branch.__name__)"
    )
    resolved = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=user_env(), check=True
    )
    assert resolved.stdout.split() == [
        "airflow_provider_nairi.decorators.nairi",
        "nairi_task",
        "nairi_branch_task",
    ]
