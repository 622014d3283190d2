"""What a wait logs and what its trigger event carries (issue 13): a person reads a few INFO lines per hour,
and Airflow's "Trigger fired event" line never prints the conversation or the agent's reply."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_nairi.hooks.nairi import NairiHook
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.resources import waiting as polling_module
from airflow_provider_nairi.triggers.conversation import EVENT_SNAPSHOT_KEYS

pytestmark = pytest.mark.nairi_emulator(turn_latency=1.0)

LONG_QUESTION = "Explain the nightly load. " * 200  # the emulator's reply repeats it: about 5 KB


@pytest.fixture
def no_sleep():
    """Real sleeps here: the emulator's agents take real time."""


@pytest.fixture
def agent_id(nairi_emulator):
    return NairiHook().client.create_agent("helper", "Answer briefly.")["id"]


@pytest.fixture
def info_lines(caplog, capsys):
    """``info_lines()``: the INFO-or-above lines logged so far (stdlib records and Airflow 3's structlog)."""
    caplog.set_level(logging.DEBUG)

    def lines():
        records = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
        out = capsys.readouterr().out.splitlines()
        printed = [line for line in out if "[debug" not in line and " DEBUG - " not in line]  # Airflow 3, 2
        return records + printed

    return lines


def first_event(trigger):
    """Run ``trigger`` as the triggerer does, until its event."""

    async def run():
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    return asyncio.run(run())


def ask(agent_id, deferrable):
    return NairiStartConversationOperator(
        task_id="ask", agent_id=agent_id, message=LONG_QUESTION, deferrable=deferrable, poll_interval=0.05
    )


def test_the_trigger_event_carries_ids_turn_and_status_only_and_the_task_still_returns_the_reply(
    agent_id, context
):
    operator = ask(agent_id, deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    event = first_event(deferred.value.trigger)
    assert set(event) == {"status", "kind", "id", "message", "resource", "error"}
    assert set(event["resource"]) == set(EVENT_SNAPSHOT_KEYS)
    assert event["resource"]["status"] == "completed" and event["resource"]["turns"] == 1
    assert len(json.dumps(event)) < 400
    result = operator.execute_complete(context, event)
    assert result["reply"].startswith("Reply to turn 1: Explain the nightly load.")
    assert len(result["reply"]) > 4000
    assert set(result) == {
        "conversation_id", "status", "turn", "reply", "reply_message_id", "artifact_ids", "url"
    }  # fmt: skip


@pytest.mark.parametrize("deferrable", [True, False], ids=["triggerer", "worker"])
def test_a_wait_logs_its_start_state_changes_still_waiting_and_outcome_at_info_and_polls_at_debug(
    deferrable, agent_id, context, info_lines, monkeypatch
):
    monkeypatch.setattr(polling_module, "STILL_WAITING_EVERY", 0.3)
    operator = ask(agent_id, deferrable)
    if deferrable:
        with pytest.raises(TaskDeferred) as deferred:
            operator.execute(context)
        first_event(deferred.value.trigger)
        where = "in the triggerer"
    else:
        operator.execute(context)
        where = "on the worker"
    conversation_id = context["ti"].xcom["conversation_id"]
    text = "\n".join(info_lines())
    assert f"Waiting for conversation {conversation_id} {where} (poll every 0.05 s)" in text
    assert f"Conversation {conversation_id} is running" in text
    assert f"Still waiting for conversation {conversation_id} (running)" in text
    done = f"Done waiting for conversation {conversation_id}"
    if deferrable:  # said once, by Airflow: its INFO line "Trigger fired event" has the status and message
        assert done not in text
    else:
        assert done in text and ": success (" in text
    # About 20 polls in one second: none of them, nor their GET, is an INFO line.
    assert f"GET /conversations/{conversation_id} ->" not in text
    assert text.count(f"Still waiting for conversation {conversation_id}") <= 4
