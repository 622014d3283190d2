"""Sensor (poke, deferrable, soft_fail), conversation trigger, extra link, templating and mapping."""

from __future__ import annotations

import json
import time
from unittest import mock

import airflow
import pytest
from airflow.providers.common.compat.sdk import (
    DAG,
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    PokeReturnValue,
    TaskDeferred,
)
from conversation_fakes import conversation, with_hook

try:
    from airflow.sdk.exceptions import AirflowRescheduleException
except ImportError:  # Airflow 2.11 to 3.1
    from airflow.exceptions import AirflowRescheduleException

from airflow_provider_nairi import exceptions as nx
from airflow_provider_nairi.links import NairiConversationLink
from airflow_provider_nairi.operators.conversation import NairiStartConversationOperator
from airflow_provider_nairi.sensors.conversation import NairiConversationSensor
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger, conversation_event

AIRFLOW_3 = not airflow.__version__.startswith("2.")


def sensor(hook, **kwargs):
    settings = {
        "task_id": "watch",
        "conversation_id": "conv_1",
        "deferrable": False,
        "poke_interval": 7,
        "timeout": 120,
    }
    return with_hook(NairiConversationSensor(**{**settings, **kwargs}), hook)


FAILED = conversation("failed", error={"code": "agent_error", "message": "no luck"})


def test_poke_waits_while_running_then_returns_the_xcom_dict(hook, context):
    hook.get_conversation.return_value = conversation("running", last_message=None)
    watcher = sensor(hook)
    assert watcher.poke(context) is False
    hook.get_conversation.return_value = conversation("completed")
    done = watcher.poke(context)
    assert isinstance(done, PokeReturnValue) and done.is_done
    assert done.xcom_value["reply"] == "the answer"
    assert context["ti"].xcom["conversation_url"] == "https://dash.example/conversations/conv_1"


@pytest.mark.skipif(not AIRFLOW_3, reason="Airflow 2 reads reschedules from the metadata DB")
def test_reschedule_mode_gives_the_slot_back_between_pokes(hook, context):
    context["ti"].get_first_reschedule_date = lambda _context: None
    hook.get_conversation.return_value = conversation("running", last_message=None)
    with pytest.raises(AirflowRescheduleException):
        sensor(hook, mode="reschedule").execute(context)
    hook.get_conversation.return_value = conversation("completed")
    assert sensor(hook, mode="reschedule").execute(context)["reply"] == "the answer"


def test_deferrable_sensor_returns_at_once_when_already_done(hook, context):
    assert sensor(hook, deferrable=True).execute(context)["reply"] == "the answer"


def test_deferrable_sensor_defers_with_its_poke_interval_and_timeout(hook, context):
    hook.get_conversation.return_value = conversation("running", last_message=None)
    with pytest.raises(TaskDeferred) as deferred:
        sensor(hook, deferrable=True).execute(context)
    kwargs = deferred.value.trigger.serialize()[1]
    assert kwargs["poll_interval"] == 7 and kwargs["turn"] is None
    assert abs(kwargs["deadline"] - (time.time() + 120)) < 5


def test_sensor_timeout_event_is_a_sensor_timeout(hook, context):
    event = {"status": "timeout", "kind": "conversation", "id": "conv_1", "message": "deadline"}
    with pytest.raises(AirflowSensorTimeout):
        sensor(hook, deferrable=True).execute_complete(context, event)
    hook.cancel_conversation.assert_not_called()


@pytest.mark.parametrize("deferrable", [False, True])
@pytest.mark.parametrize(
    "answer",
    [FAILED, conversation("cancelled"), nx.NairiServerError("down", status=503)],
    ids=["failed", "cancelled", "503"],
)
def test_soft_fail_skips_the_same_way_deferred_or_not(hook, context, deferrable, answer):
    watcher = sensor(hook, deferrable=deferrable, soft_fail=True)
    if isinstance(answer, Exception):
        hook.get_conversation.side_effect = answer
        event = {
            "status": "error",
            "kind": "conversation",
            "id": "conv_1",
            "message": str(answer),
            "error": {"retryable": True},
        }
    else:
        hook.get_conversation.return_value = answer
        event = conversation_event(answer)
    with pytest.raises(AirflowSkipException):
        watcher.execute(context) if not deferrable else watcher.execute_complete(context, event)


def test_without_soft_fail_a_failed_turn_fails(hook, context):
    hook.get_conversation.return_value = FAILED
    with pytest.raises(AirflowException, match="agent_error: no luck"):
        sensor(hook).execute(context)


# -- trigger -------------------------------------------------------------------------------------------------


def trigger(**kwargs):
    return NairiConversationTrigger(
        **{
            "conn_id": "nairi_default",
            "resource_id": "conv_1",
            "deadline": time.time() + 30,
            "poll_interval": 0.01,
            "turn": 2,
            **kwargs,
        }
    )


def test_trigger_serializes_json_only_without_secrets_and_round_trips():
    classpath, kwargs = trigger().serialize()
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert set(kwargs) == {
        "conn_id",
        "resource_id",
        "deadline",
        "poll_interval",
        "max_transient_errors",
        "turn",
        "cancel_on_kill",
    }
    assert NairiConversationTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_trigger_serialized_before_cancel_on_kill_existed_still_cancels_on_kill():
    _, kwargs = trigger().serialize()
    del kwargs["cancel_on_kill"]  # a trigger row written by an earlier version of the provider
    assert NairiConversationTrigger(**kwargs).cancel_on_kill is True


async def test_trigger_waits_for_its_turn_and_emits_the_snapshot():
    hook = mock.MagicMock()
    hook.get_async_client = mock.AsyncMock(return_value=hook)
    hook.send = mock.AsyncMock(  # the client's send: the trigger sends get_conversation's call
        side_effect=[
            conversation("completed", turns=1),  # turn 2 not counted yet
            conversation("running", turns=2, last_message=None),
            conversation("completed", turns=2, reply="second"),
        ]
    )
    hook.close = mock.AsyncMock()
    trig = trigger()
    with mock.patch.object(NairiConversationTrigger, "make_hook", return_value=hook):
        events = [event.payload async for event in trig.run()]
    assert len(events) == 1 and events[0]["status"] == "success"
    # One GET of the conversation per poll, its call built at the first poll and sent again after.
    sent = [awaited.args[0] for awaited in hook.send.await_args_list]
    assert len(sent) == 3 and all(call is sent[0] for call in sent)
    assert (sent[0].method, sent[0].path, sent[0].expect) == ("GET", "/conversations/conv_1", "object")
    # The event names the turn; the reply ("second") is read by the resuming task, never carried (issue 13).
    assert events[0]["resource"] == {"id": "conv_1", "status": "completed", "turns": 2}
    assert "second" not in json.dumps(events[0])
    hook.close.assert_awaited_once()


async def test_trigger_on_kill_cancels_the_conversation():
    hook = mock.MagicMock(cancel_conversation=mock.AsyncMock(), close=mock.AsyncMock())
    hook.get_async_client = mock.AsyncMock(return_value=hook)
    with mock.patch.object(NairiConversationTrigger, "make_hook", return_value=hook):
        await trigger().on_kill()
    hook.cancel_conversation.assert_awaited_once_with("conv_1")


async def test_trigger_on_a_turn_not_its_own_leaves_it_running_on_kill(capsys):
    hook = mock.MagicMock(cancel_conversation=mock.AsyncMock(), close=mock.AsyncMock())
    hook.get_async_client = mock.AsyncMock(return_value=hook)
    with mock.patch.object(NairiConversationTrigger, "make_hook", return_value=hook):
        await trigger(turn=None, cancel_on_kill=False).on_kill()
    hook.cancel_conversation.assert_not_awaited()
    assert "Left conversation conv_1 running" in capsys.readouterr().out


# -- link, templating, mapping ------------------------------------------------------------------------------


def test_link_reads_the_pushed_url():
    link = NairiConversationLink()
    assert link.name == "Nairi conversation"
    with mock.patch("airflow_provider_nairi.links.XCom.get_value", return_value="https://x/conversations/c"):
        assert link.get_link(None, ti_key=mock.sentinel.key) == "https://x/conversations/c"
    with mock.patch("airflow_provider_nairi.links.XCom.get_value", return_value=None):
        assert link.get_link(None, ti_key=mock.sentinel.key) == ""


def test_prompt_file_and_fields_are_templated(tmp_path):
    (tmp_path / "prompt.md").write_text("Summarise run {{ run_id }} for {{ params.team }}")
    with DAG("templated", schedule=None, template_searchpath=[str(tmp_path)], params={"team": "ops"}):
        op = NairiStartConversationOperator(
            task_id="ask",
            agent_name="{{ params.team }}-agent",
            message="prompt.md",
            title="Run {{ run_id }}",
            metadata={"run": "{{ run_id }}"},
            artifact_ids=["{{ params.team }}"],
        )
    op.resolve_template_files()
    op.render_template_fields({"run_id": "r1", "params": {"team": "ops"}})
    assert op.message == "Summarise run r1 for ops"
    assert (op.agent_name, op.title, op.metadata, op.artifact_ids) == (
        "ops-agent",
        "Run r1",
        {"run": "r1"},
        ["ops"],
    )


def test_mapping_over_prompts():
    with DAG("mapped", schedule=None):
        mapped = NairiStartConversationOperator.partial(task_id="ask", agent_id="agt_1").expand(
            message=["a", "b", "c"]
        )
    assert mapped.expand_input.value == {"message": ["a", "b", "c"]}
    assert mapped.partial_kwargs["agent_id"] == "agt_1"
