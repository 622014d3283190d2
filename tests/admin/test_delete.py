"""NairiDeleteOperator: removal by id or name for each kind, safe when the resource is already gone."""

from __future__ import annotations

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_nairi.exceptions import NairiRateLimitError
from airflow_provider_nairi.operators.admin import NairiDeleteOperator


@pytest.fixture
def resources(org):
    agent = org.create_agent("triage", "x")["id"]
    vault = org.create_vault("support")["id"]
    job = org.create_scheduled_job("morning", agent, "hi", "0 9 * * *")["id"]
    org.put_env_var("LOG_LEVEL", "info")
    return {"agent": (agent, "triage"), "vault": (vault, "support"), "scheduled_job": (job, "morning")}


@pytest.mark.parametrize("kind", ["agent", "vault", "scheduled_job"])
@pytest.mark.parametrize("by", ["resource_id", "name"])
def test_delete_then_delete_again_is_already_absent(run, org, resources, kind, by):
    resource_id, name = resources[kind]
    op = NairiDeleteOperator(task_id="rm", kind=kind, **{by: resource_id if by == "resource_id" else name})

    first = run(op)
    second = run(op)

    assert first["action"] == "deleted" and second["action"] == "already absent"
    assert first["kind"] == kind
    if by == "name":
        assert first["id"] == resource_id and second["id"] is None
    table = {"agent": org.agents, "vault": org.vaults, "scheduled_job": org.jobs}[kind]
    assert resource_id not in table


def test_env_var_is_deleted_by_name_and_tolerates_absence(run, org, resources):
    op = NairiDeleteOperator(task_id="rm", kind="env_var", name="LOG_LEVEL")
    assert run(op) == {"kind": "env_var", "id": None, "name": "LOG_LEVEL", "action": "deleted"}
    assert run(op)["action"] == "already absent"
    assert org.env == {}


def test_env_var_by_id_is_refused_with_the_fix(run, hook):
    with pytest.raises(AirflowFailException, match="env vars have no id; give name="):
        run(NairiDeleteOperator(task_id="rm", kind="env_var", resource_id="LOG_LEVEL"))
    assert hook.mock_calls == []


def test_duplicate_names_are_not_guessed(run, org, resources):
    org.create_agent("triage", "second")
    with pytest.raises(AirflowFailException, match=r"2 agents are named 'triage' \(agt_1, agt_4\)"):
        run(NairiDeleteOperator(task_id="rm", kind="agent", name="triage"))
    assert len(org.agents) == 2


def test_retryable_api_errors_leave_airflow_retries_on(run, hook, resources):
    hook.delete_agent.side_effect = NairiRateLimitError("slow down", status=429, code="rate_limited")
    with pytest.raises(AirflowException) as info:
        run(NairiDeleteOperator(task_id="rm", kind="agent", resource_id="agt_1"))
    assert not isinstance(info.value, AirflowFailException)


def test_unknown_kind_fails_at_parse_time():
    with pytest.raises(ValueError, match="kind: 'agents' is not one of agent, vault, scheduled_job, env_var"):
        NairiDeleteOperator(task_id="rm", kind="agents", name="x")
