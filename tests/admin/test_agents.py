"""NairiAgentOperator: create, patch only what differs, leave equal agents alone, refuse duplicate names."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_nairi.idempotency import declaration_idempotency_key
from airflow_provider_nairi.operators.agents import NairiAgentOperator


def agent(**kwargs):
    kwargs.setdefault("instructions", "Triage incoming tickets.")
    return NairiAgentOperator(task_id="agent", name="triage", **kwargs)


def test_absent_agent_is_created_with_an_idempotency_key(run, hook, org, context):
    plan = run(agent(model="nairi-large", vault_ids=["vlt_9"]))

    assert plan == {"kind": "agent", "id": "agt_1", "name": "triage", "action": "created", "fields": []}
    hook.create_agent.assert_called_once_with(
        "triage",
        instructions="Triage incoming tickets.",
        model="nairi-large",
        vault_ids=["vlt_9"],
        idempotency_key=declaration_idempotency_key(
            "create-agent",
            "triage",
            json.dumps(
                {"instructions": "Triage incoming tickets.", "model": "nairi-large", "vault_ids": ["vlt_9"]}
            ),
        ),
    )
    assert org.agents["agt_1"]["vault_ids"] == ["vlt_9"]
    # The id, so that a DAG can pass agent_task.output["id"] on; the URL, for the "Nairi agent" link.
    assert context["ti"].xcom == {"id": "agt_1", "agent_url": "https://app.example/agents/agt_1"}
    assert [link.name for link in NairiAgentOperator.operator_extra_links] == ["Nairi agent"]


def test_matching_agent_is_unchanged_and_nothing_is_written(run, hook):
    run(agent(model="nairi-large", vault_ids=["vlt_1", "vlt_2"]))
    hook.reset_mock()

    plan = run(agent(model="nairi-large", vault_ids=["vlt_2", "vlt_1"]))

    assert plan["action"] == "unchanged" and plan["fields"] == [] and plan["id"] == "agt_1"
    hook.create_agent.assert_not_called()
    hook.update_agent.assert_not_called()


def test_only_the_differing_fields_are_patched(run, hook, org):
    run(agent(model="nairi-large"))

    plan = run(agent(instructions="Triage and label tickets.", model="nairi-large", vault_ids=["vlt_3"]))

    assert plan["action"] == "updated" and plan["fields"] == ["instructions", "vault_ids"]
    hook.update_agent.assert_called_once_with(
        "agt_1", instructions="Triage and label tickets.", vault_ids=["vlt_3"]
    )
    assert org.agents["agt_1"]["model"] == "nairi-large"


def test_unmanaged_fields_are_left_as_they_are(run, hook, org):
    run(agent(model="nairi-large", vault_ids=["vlt_3"]))

    plan = run(agent())  # model and vault_ids not declared

    assert plan["action"] == "unchanged"
    assert org.agents["agt_1"]["model"] == "nairi-large" and org.agents["agt_1"]["vault_ids"] == ["vlt_3"]


def test_two_agents_with_the_name_fail_with_both_ids(run, hook, org):
    org.create_agent("triage", "a")
    org.create_agent("triage", "b")

    with pytest.raises(AirflowFailException) as info:
        run(agent())

    assert "2 agents are named 'triage' (agt_1, agt_2)" in str(info.value)
    hook.update_agent.assert_not_called()
    hook.create_agent.assert_not_called()


def test_blank_name_fails_before_any_request(run, hook):
    with pytest.raises(AirflowFailException, match="name: give a non-empty name"):
        run(NairiAgentOperator(task_id="agent", name=" ", instructions="x"))
    assert hook.mock_calls == []


def test_declared_fields_are_templated():
    assert set(NairiAgentOperator.template_fields) == {"name", "instructions", "model", "vault_ids"}
