"""NairiScheduledJobOperator: declarative upsert, agent look-up by name, checks before any request."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_nairi.exceptions import NairiConfigurationError
from airflow_provider_nairi.idempotency import declaration_idempotency_key
from airflow_provider_nairi.operators.scheduled_jobs import NairiScheduledJobOperator


def job(**kwargs):
    kwargs.setdefault("agent_name", "triage")
    kwargs.setdefault("cron", "0 9 * * 1-5")
    return NairiScheduledJobOperator(
        task_id="job", name="morning", message="Summarise new tickets.", **kwargs
    )


@pytest.fixture
def agent_id(org):
    return org.create_agent("triage", "Triage tickets.")["id"]


def test_job_is_created_for_the_named_agent(run, hook, org, agent_id, context):
    plan = run(job(timezone="Europe/Paris"))

    assert plan == {
        "kind": "scheduled_job",
        "id": "job_2",
        "name": "morning",
        "agent_id": agent_id,
        "action": "created",
        "fields": [],
    }
    hook.create_scheduled_job.assert_called_once_with(
        "morning",
        agent_id=agent_id,
        message="Summarise new tickets.",
        cron="0 9 * * 1-5",
        timezone="Europe/Paris",
        enabled=True,
        idempotency_key=declaration_idempotency_key(
            "create-scheduled-job",
            "morning",
            json.dumps(
                {
                    "agent_id": agent_id,
                    "cron": "0 9 * * 1-5",
                    "enabled": True,
                    "message": "Summarise new tickets.",
                    "timezone": "Europe/Paris",
                }
            ),
        ),
    )


def test_matching_job_is_unchanged(run, hook, agent_id):
    run(job())
    hook.reset_mock()
    plan = run(job(agent_name=None, agent_id=agent_id))
    assert plan["action"] == "unchanged"
    hook.update_scheduled_job.assert_not_called()
    hook.create_scheduled_job.assert_not_called()


def test_differing_fields_are_patched(run, hook, org, agent_id):
    run(job())
    plan = run(job(cron="30 8 * * *", enabled=False))
    assert plan["action"] == "updated" and plan["fields"] == ["cron", "enabled"]
    hook.update_scheduled_job.assert_called_once_with("job_2", cron="30 8 * * *", enabled=False)
    assert org.jobs["job_2"]["enabled"] is False


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cron": "0 25 * * *"}, r"^cron: '0 25 \* \* \*' is not a valid cron expression"),
        ({"timezone": "Europe/Pariss"}, r"^timezone: 'Europe/Pariss' is not a known time zone"),
    ],
)
def test_literal_cron_and_timezone_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(NairiConfigurationError, match=message):
        job(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "params", "message"),
    [
        (
            {"cron": "{{ params.cron }}"},
            {"cron": "0 25 * * *"},
            r"^Nairi: cron: '0 25 \* \* \*' is not a valid",
        ),
        (
            {"timezone": "{{ params.tz }}"},
            {"tz": "Mars/Olympus"},
            r"^Nairi: timezone: 'Mars/Olympus' is not a known",
        ),
        (
            {"agent_id": "agt_1"},
            {},
            r"^Nairi: Give exactly one of agent_id or agent_name \(got agent_id, agent_name\)",
        ),
        ({"agent_name": None}, {}, r"^Nairi: Give exactly one of agent_id or agent_name \(got neither\)"),
    ],
)
def test_bad_parameters_fail_before_any_request(run, hook, context, kwargs, params, message):
    operator = job(**kwargs)
    context["params"] = params
    operator.render_template_fields(context)
    with pytest.raises(AirflowFailException, match=message):
        run(operator)
    assert hook.mock_calls == []


def test_unknown_agent_name_says_what_to_do(run, hook):
    with pytest.raises(AirflowFailException, match="agent_name: no agent is named 'triage'; create it first"):
        run(job())
    hook.create_scheduled_job.assert_not_called()


def test_two_jobs_with_the_name_fail_with_both_ids(run, org, agent_id):
    org.create_scheduled_job("morning", agent_id, "a", "0 9 * * *")
    org.create_scheduled_job("morning", agent_id, "b", "0 9 * * *")
    with pytest.raises(AirflowFailException, match=r"2 scheduled jobs are named 'morning' \(job_2, job_3\)"):
        run(job())
