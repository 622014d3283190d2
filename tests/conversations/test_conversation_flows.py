"""Conversation flows against the emulator over real HTTP on loopback (sync hook, async trigger, retries)."""

from __future__ import annotations

import asyncio
import json

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from conversation_fakes import durable_only

from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.conversation import (
    SUBMISSION_KEY,
    NairiSendMessageOperator,
    NairiStartConversationOperator,
)
from airflow_provider_nairi.sensors.conversation import NairiConversationSensor

pytestmark = pytest.mark.nairi_emulator(turn_latency=0.05)


@pytest.fixture
def no_sleep():
    """Real sleeps here: the emulator's agents take real time."""


@pytest.fixture
def agent_id(nairi_emulator):
    return NairiHook().client.create_agent("helper", "Answer briefly.")["id"]


def start(agent_id, **kwargs):
    settings = {
        "task_id": "ask",
        "agent_id": agent_id,
        "message": "What is 2+2?",
        "poll_interval": 0.02,
        "deferrable": False,
        "timeout": 20,
    }
    return NairiStartConversationOperator(**{**settings, **kwargs})


def follow_up(conversation_id, **kwargs):
    settings = {
        "task_id": "follow_up",
        "conversation_id": conversation_id,
        "message": "next",
        "poll_interval": 0.05,
        "deferrable": False,
        "timeout": 20,
    }
    return NairiSendMessageOperator(**{**settings, **kwargs})


def message_sends(nairi_emulator):
    """The status of every ``POST /conversations/{id}/messages`` the emulator answered, in order."""
    return [r["status"] for r in nairi_emulator.admin.requests_log() if r["path"].endswith("/messages")]


def resume(operator, context, deferred):
    """Run the trigger the way the triggerer does, then resume the task with its event."""

    async def first_event():
        async for event in deferred.trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    event = asyncio.run(first_event())
    return getattr(operator, deferred.method_name)(context, event, **(deferred.kwargs or {}))


def test_start_and_wait_on_the_worker(agent_id, context, nairi_emulator):
    result = start(agent_id).execute(context)
    assert result["status"] == "completed" and result["turn"] == 1
    assert result["reply"].startswith("Reply to turn 1: What is 2+2?")
    assert result["url"] == f"https://app.nairi.ai/conversations/{result['conversation_id']}"
    assert nairi_emulator.admin.counts()["conversations"] == 1


def test_start_deferred_then_continue_the_thread_deferred(agent_id, context):
    operator = start(agent_id, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    first = resume(operator, context, deferred.value)
    assert first["reply"].startswith("Reply to turn 1")

    operator = follow_up(first["conversation_id"], message="And 3+3?", deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({**context, "task_state_store": None})
    second = resume(operator, context, deferred.value)
    assert second["turn"] == 2 and second["reply"].startswith("Reply to turn 2: And 3+3?")


def test_send_waits_for_a_busy_conversation(agent_id, context, nairi_emulator):
    started = start(agent_id, message="slow [[delay:1.5]]", wait_for_reply=False).execute(context)
    reply = follow_up(started["conversation_id"]).execute({**context, "task_state_store": None})
    assert reply["turn"] == 2 and reply["reply"].startswith("Reply to turn 2: next")
    sends = message_sends(nairi_emulator)
    assert 409 in sends and sends[-1] == 201  # it was busy, waited, then sent once


def test_deferrable_send_waits_for_a_busy_conversation_in_the_triggerer(agent_id, context, nairi_emulator):
    started = start(agent_id, message="slow [[delay:1]]", wait_for_reply=False).execute(context)
    operator = follow_up(started["conversation_id"], deferrable=True)
    context = {**context, "task_state_store": None}
    with pytest.raises(TaskDeferred) as busy:
        operator.execute(context)
    assert busy.value.method_name == "send_when_idle"
    with pytest.raises(TaskDeferred) as sent:
        resume(operator, context, busy.value)  # the trigger waits out turn 1; then the send goes through
    reply = resume(operator, context, sent.value)
    assert reply["turn"] == 2 and reply["reply"].startswith("Reply to turn 2: next")
    assert message_sends(nairi_emulator) == [
        409,
        201,
    ]  # busy once, then sent once: no polling of the send on the worker


def test_agent_failure_carries_the_agents_error(agent_id, context):
    with pytest.raises(AirflowException, match="quota_exceeded: out of quota") as caught:
        start(agent_id, message="[[fail:quota_exceeded:out of quota]]").execute(context)
    assert not isinstance(caught.value, AirflowFailException)


def test_unknown_agent_fails_without_retries_with_the_request_id(nairi_emulator, context):
    with pytest.raises(AirflowFailException, match=r"404 not_found") as caught:
        start("agt_missing").execute(context)
    assert "req_" in str(caught.value)


def test_trigger_rides_out_transient_faults(agent_id, context, nairi_emulator):
    operator = start(agent_id, deferrable=True, message="[[delay:0.2]] hi")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    nairi_emulator.admin.set_faults(sequence=["503", "500", "reset", "503"])
    assert resume(operator, context, deferred.value)["status"] == "completed"


def test_worker_timeout_cancels_the_conversation(agent_id, context):
    with pytest.raises(AirflowException, match=r"timeout=0\.2 s; it was cancelled"):
        start(agent_id, message="[[delay:30]]", timeout=0.2).execute(context)
    conversation_id = context["ti"].xcom["conversation_id"]
    assert NairiHook().client.get_conversation(conversation_id)["status"] == "cancelled"


def test_trigger_on_kill_cancels_the_conversation(agent_id, context):
    operator = start(agent_id, deferrable=True, message="[[delay:30]]")
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    asyncio.run(deferred.value.trigger.on_kill())
    conversation_id = context["ti"].xcom["conversation_id"]
    assert NairiHook().client.get_conversation(conversation_id)["status"] == "cancelled"


@durable_only
def test_lost_answer_is_replayed_not_duplicated(agent_id, context, store, nairi_emulator):
    store.set(SUBMISSION_KEY, 1)  # a first try sent submission 1 and died before storing the id
    first = start(agent_id, wait_for_reply=False).execute(context)
    store.values.pop("nairi_conversation")  # ...the same crash again
    again = start(agent_id).execute(context)
    assert again["conversation_id"] == first["conversation_id"]
    assert nairi_emulator.admin.counts()["conversations"] == 1


def test_sensor_poke_and_deferred(agent_id, context):
    started = start(agent_id, message="[[delay:0.2]] q", wait_for_reply=False).execute(context)
    poking = NairiConversationSensor(
        task_id="watch", conversation_id=started["conversation_id"], poke_interval=0.05, timeout=20
    )
    assert poking.execute(context)["reply"].startswith("Reply to turn 1: q")
    deferring = NairiConversationSensor(
        task_id="watch", conversation_id=started["conversation_id"], deferrable=True, poke_interval=0.05
    )
    assert deferring.execute(context)["turn"] == 1  # already done: no deferral


def test_the_key_reaches_no_trigger_kwargs_event_xcom_error_or_log(agent_id, context, nairi_emulator, capsys):
    key = nairi_emulator.api_key
    operator = start(agent_id, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    kwargs = json.dumps(deferred.value.trigger.serialize())
    result = resume(operator, context, deferred.value)
    with pytest.raises(AirflowFailException) as failed:
        start("agt_missing").execute({**context, "task_state_store": None})
    seen = [
        kwargs,
        json.dumps(result),
        json.dumps(context["ti"].xcom),
        str(failed.value),
        capsys.readouterr().out,
    ]
    assert not [text for text in seen if key in text]


def test_attachments_are_uploaded_first_and_attached(agent_id, context, tmp_path, nairi_emulator):
    brief = tmp_path / "brief.md"
    brief.write_text("# Brief\nRefunds rose.")
    operator = start(agent_id, message="Summarise the brief", attachments=[brief], artifact_ids=None)
    result = operator.execute(context)
    assert "Attachments: brief.md" in result["reply"]
    again = start(agent_id, message="Summarise the brief", attachments=[brief]).execute(
        {**context, "task_state_store": None}
    )
    assert "Attachments: brief.md" in again["reply"]
    assert nairi_emulator.admin.counts()["artifacts"] == 1  # the retry replayed the upload
