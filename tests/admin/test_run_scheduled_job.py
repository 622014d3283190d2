"""NairiRunScheduledJobOperator: runs a job now and waits exactly as the conversation operators do."""

from __future__ import annotations

import json
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, TaskDeferred

from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.operators.scheduled_jobs import NairiRunScheduledJobOperator
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger


def conversation(status, reply=None):
    last = None
    if reply is not None:
        last = {"id": "msg_2", "role": "assistant", "content": reply, "turn": 1, "artifact_ids": []}
    return {
        "id": "conv_7",
        "agent_id": "agt_1",
        "status": status,
        "turns": 1,
        "last_message": last,
        "error": None,
    }


@pytest.fixture
def job_hook():
    hook = mock.MagicMock(name="NairiHook")
    hook.client = hook
    hook.list_scheduled_jobs.return_value = iter([{"id": "job_1", "name": "morning"}])
    hook.run_scheduled_job.return_value = conversation("queued")
    hook.get_conversation.side_effect = [
        conversation("running"),
        conversation("completed", "Done: 3 tickets."),
    ]
    hook.dashboard_url.side_effect = lambda kind, object_id: f"https://app.example/{kind}/{object_id}"
    return hook


def run_job(hook, **kwargs):
    settings = {"task_id": "run", "deferrable": False, "poll_interval": 0.01}
    operator = NairiRunScheduledJobOperator(**{**settings, **kwargs})
    operator.__dict__["hook"] = hook
    return operator


def test_job_found_by_name_runs_once_and_the_reply_is_returned(job_hook, context):
    result = run_job(job_hook, job_name="morning").execute(context)

    assert result == {
        "conversation_id": "conv_7",
        "status": "completed",
        "turn": 1,
        "reply": "Done: 3 tickets.",
        "reply_message_id": "msg_2",
        "artifact_ids": [],
        "url": "https://app.example/conversations/conv_7",
    }
    job_hook.run_scheduled_job.assert_called_once_with(
        "job_1", idempotency_key=task_idempotency_key(context["ti"], "run-scheduled-job", "job_1:try-1")
    )
    assert context["ti"].xcom["conversation_id"] == "conv_7"


def test_deferrable_run_defers_to_the_conversation_trigger(job_hook, context):
    with pytest.raises(TaskDeferred) as deferred:
        run_job(job_hook, job_id="job_1", deferrable=True, timeout=60).execute(context)

    trigger = deferred.value.trigger
    assert isinstance(trigger, NairiConversationTrigger) and deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert kwargs["resource_id"] == "conv_7" and json.loads(json.dumps(kwargs)) == kwargs
    job_hook.list_scheduled_jobs.assert_not_called()  # an id needs no look-up


def test_wait_for_reply_false_returns_the_conversation_id_at_once(job_hook, context):
    result = run_job(job_hook, job_id="job_1", wait_for_reply=False).execute(context)
    assert (result["conversation_id"], result["status"], result["reply"]) == ("conv_7", "running", None)
    assert job_hook.get_conversation.call_count == 1  # one read, no wait for the reply


@pytest.mark.parametrize(
    ("jobs", "kwargs", "text"),
    [
        ([], {"job_name": "morning"}, "job_name: no scheduled job is named 'morning'"),
        (
            [{"id": "job_1", "name": "morning"}, {"id": "job_2", "name": "morning"}],
            {"job_name": "morning"},
            "2 scheduled jobs are named 'morning' (job_1, job_2)",
        ),
        ([], {}, "Give exactly one of job_id or job_name (got neither)"),
    ],
)
def test_unresolvable_job_fails_without_running_anything(job_hook, context, jobs, kwargs, text):
    job_hook.list_scheduled_jobs.return_value = iter(jobs)
    with pytest.raises(AirflowFailException) as info:
        run_job(job_hook, **kwargs).execute(context)
    assert text in str(info.value)
    job_hook.run_scheduled_job.assert_not_called()


@pytest.mark.parametrize(
    "extra", [{"message": "hi"}, {"attachments": ["/tmp/a.txt"]}, {"artifact_ids": ["art_1"]}]
)
def test_a_message_or_attachment_for_a_job_run_is_refused_not_dropped(extra):
    with pytest.raises(ValueError, match="the job sends its own message") as caught:
        NairiRunScheduledJobOperator(task_id="run", job_id="job_1", **extra)
    assert next(iter(extra)) in str(caught.value)
    assert "NairiScheduledJobOperator" in str(caught.value)
