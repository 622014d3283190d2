"""Fixtures for the org-as-code operators: an in-memory org behind the hook's method names."""

from __future__ import annotations

import itertools
import logging
from types import SimpleNamespace
from typing import Any
from unittest import mock

import pytest

from airflow_provider_nairi.exceptions import NairiNotFoundError

try:  # Airflow 3 logs through structlog; Airflow 2 through the standard library only.
    import structlog
except ImportError:  # pragma: no cover - Airflow 2
    structlog = None  # type: ignore[assignment]


class FakeOrg:
    """The hook's admin methods over dicts, with the contract's shapes (ids, write-only secret values)."""

    def __init__(self) -> None:
        self.agents: dict[str, dict[str, Any]] = {}
        self.vaults: dict[str, dict[str, Any]] = {}
        self.secret_values: dict[tuple[str, str], str] = {}
        self.env: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def _new(self, prefix: str, table: dict[str, dict[str, Any]], **fields: Any) -> dict[str, Any]:
        item = {"id": f"{prefix}_{next(self._ids)}", **fields}
        table[item["id"]] = item
        return dict(item)

    @staticmethod
    def _get(table: dict[str, dict[str, Any]], item_id: str) -> dict[str, Any]:
        if item_id not in table:
            raise NairiNotFoundError("no such resource", status=404, code="not_found")
        return table[item_id]

    @staticmethod
    def dashboard_url(kind, object_id):
        return f"https://app.example/{kind}/{object_id}"

    def list_agents(self):
        return iter([dict(a) for a in self.agents.values()])

    def create_agent(self, name, instructions, model=None, vault_ids=None, *, idempotency_key=None):
        return self._new(
            "agt",
            self.agents,
            name=name,
            instructions=instructions,
            model=model or "nairi-default",
            vault_ids=list(vault_ids or []),
        )

    def get_agent(self, agent_id):
        return dict(self._get(self.agents, agent_id))

    def update_agent(self, agent_id, **fields):
        self._get(self.agents, agent_id).update(fields)
        return dict(self.agents[agent_id])

    def delete_agent(self, agent_id):
        self._get(self.agents, agent_id)
        del self.agents[agent_id]

    def list_vaults(self):
        return iter([dict(v, secret_names=list(v["secret_names"])) for v in self.vaults.values()])

    def create_vault(self, name, *, idempotency_key=None):
        return self._new("vlt", self.vaults, name=name, secret_names=[])

    def get_vault(self, vault_id):
        return dict(self._get(self.vaults, vault_id))

    def delete_vault(self, vault_id):
        self._get(self.vaults, vault_id)
        del self.vaults[vault_id]

    def put_vault_secret(self, vault_id, name, value):
        vault = self._get(self.vaults, vault_id)
        if name not in vault["secret_names"]:
            vault["secret_names"].append(name)
        self.secret_values[(vault_id, name)] = value
        return {"name": name, "updated_at": "2026-11-23T00:00:00Z"}

    def delete_vault_secret(self, vault_id, name):
        vault = self._get(self.vaults, vault_id)
        if name not in vault["secret_names"]:
            raise NairiNotFoundError("no such secret", status=404, code="not_found")
        vault["secret_names"].remove(name)
        del self.secret_values[(vault_id, name)]

    def list_env_vars(self):
        return iter([dict(e, value=None if e["secret"] else e["value"]) for e in self.env.values()])

    def put_env_var(self, name, value, secret=False):
        self.env[name] = {
            "name": name,
            "value": value,
            "secret": secret,
            "updated_at": "2026-11-23T00:00:00Z",
        }
        return dict(self.env[name], value=None if secret else value)

    def delete_env_var(self, name):
        if name not in self.env:
            raise NairiNotFoundError("no such env var", status=404, code="not_found")
        del self.env[name]

    def list_scheduled_jobs(self):
        return iter([dict(j) for j in self.jobs.values()])

    def create_scheduled_job(
        self, name, agent_id, message, cron, timezone=None, enabled=None, *, idempotency_key=None
    ):
        return self._new(
            "job",
            self.jobs,
            name=name,
            agent_id=agent_id,
            message=message,
            cron=cron,
            timezone=timezone or "UTC",
            enabled=True if enabled is None else enabled,
            next_run_at=None,
            last_run=None,
        )

    def get_scheduled_job(self, job_id):
        return dict(self._get(self.jobs, job_id))

    def update_scheduled_job(self, job_id, **fields):
        self._get(self.jobs, job_id).update(fields)
        return dict(self.jobs[job_id])

    def delete_scheduled_job(self, job_id):
        self._get(self.jobs, job_id)
        del self.jobs[job_id]


@pytest.fixture
def org() -> FakeOrg:
    return FakeOrg()


@pytest.fixture
def hook(org: FakeOrg) -> mock.MagicMock:
    """A mock that records every call and delegates to the in-memory org."""
    hook = mock.MagicMock(wraps=org)
    hook.client = hook  # the hook's API object: the same mock
    return hook


class FakeTaskInstance(SimpleNamespace):
    """What the operators use of a task instance: its identity, ``try_number`` and ``xcom_push``."""

    def __init__(self) -> None:
        super().__init__(
            dag_id="org", task_id="t", run_id="manual__1", map_index=-1, try_number=1, stats_tags={}, xcom={}
        )

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


@pytest.fixture
def context() -> dict[str, Any]:
    return {"ti": FakeTaskInstance(), "params": {}}


@pytest.fixture
def run(hook: mock.MagicMock, context: dict[str, Any]):
    """``run(operator)``: execute it against the fake org and return its XCom value."""

    def _run(operator: Any) -> Any:
        operator.__dict__["hook"] = hook
        return operator.execute(context)

    return _run


@pytest.fixture
def logs(caplog, capsys):
    """``logs()``: all logged so far: stdlib (caplog, DEBUG) and Airflow 3's structlog (stdout, stderr).

    ``mask_secret`` is replaced by a no-op in the operators' module while this fixture is active, so a value
    that reaches a log line shows up here instead of being hidden by Airflow's masker.
    """
    caplog.set_level(logging.DEBUG)
    saved = structlog.get_config() if structlog else {}
    if structlog:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with mock.patch("airflow_provider_nairi.operators.secrets.mask_secret"):
            yield lambda: caplog.text + "".join(capsys.readouterr())
    finally:
        if structlog:
            structlog.configure(**saved)
