"""Start / send operators: deferral, worker waits, outcomes, retries, kills (hook mocked at its methods)."""

from __future__ import annotations

import json
import time
from unittest import mock

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, TaskDeferred
from conversation_fakes import DURABLE, conversation, durable_only, with_hook

from airflow_provider_nairi import exceptions as nx

try:
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.context import OutletEventAccessors
except ImportError:  # Airflow 2.11
    from airflow.datasets import Dataset as Asset
    from airflow.utils.context import OutletEventAccessors
from airflow_provider_nairi.idempotency import task_idempotency_key
from airflow_provider_nairi.operators.conversation import (
    SUBMISSION_KEY,
    NairiSendMessageOperator,
    NairiStartConversationOperator,
)
from airflow_provider_nairi.outcomes import make_event
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger

URL = "https://dash.example/conversations/conv_1"


def start(hook, **kwargs):
    settings = {"task_id": "ask", "agent_id": "agt_1", "message": "Summarise", "deferrable": False}
    return with_hook(NairiStartConversationOperator(**{**settings, **kwargs}), hook)


def send(hook, **kwargs):
    settings = {
        "task_id": "follow_up",
        "conversation_id": "conv_1",
        "message": "And then?",
        "deferrable": False,
    }
    return with_hook(NairiSendMessageOperator(**{**settings, **kwargs}), hook)


def first_key(ti, number=1):
    """The key of submission ``number`` (below Airflow 3.3, without task_state_store: of the try)."""
    return task_idempotency_key(ti, "start-conversation", number if DURABLE else f"try-{ti.try_number}")


# -- deferrable ---------------------------------------------------------------------------------------------


def test_deferrable_start_defers_to_the_conversation_trigger_with_json_kwargs(hook, context):
    operator = start(hook, deferrable=True, timeout=600, poll_interval=2)
    before = time.time()
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute(context)
    trigger = deferred.value.trigger
    assert isinstance(trigger, NairiConversationTrigger)
    assert deferred.value.method_name == "execute_complete"
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_provider_nairi.triggers.conversation.NairiConversationTrigger"
    assert json.loads(json.dumps(kwargs)) == kwargs
    assert kwargs["conn_id"] == "nairi_default" and kwargs["resource_id"] == "conv_1"
    assert kwargs["turn"] == 1 and kwargs["poll_interval"] == 2
    assert before + 600 <= kwargs["deadline"] <= time.time() + 600
    assert NairiConversationTrigger(**kwargs).serialize() == (classpath, kwargs)
    # The id and the link are known before the wait.
    assert context["ti"].xcom == {"conversation_id": "conv_1", "conversation_url": URL}
    hook.get_conversation.assert_not_called()  # the create's answer is enough to defer


def test_execute_complete_turns_a_success_event_into_the_xcom_dict(hook, context):
    operator = start(hook, deferrable=True)
    event = {
        "status": "success",
        "kind": "conversation",
        "id": "conv_1",
        "message": "",
        "resource": conversation("completed"),
        "error": None,
    }
    result = operator.execute_complete(context, event)
    assert result == {
        "conversation_id": "conv_1",
        "status": "completed",
        "turn": 1,
        "reply": "the answer",
        "reply_message_id": "msg_reply_1",
        "artifact_ids": ["art_out"],
        "url": URL,
    }
    assert json.loads(json.dumps(result)) == result
    hook.list_messages.assert_not_called()


def test_reply_is_read_from_the_messages_when_the_snapshot_does_not_hold_it(hook, context):
    snapshot = conversation("completed", turns=2, last_message=None)
    hook.list_messages.return_value = iter(
        [
            {"id": "msg_a", "role": "assistant", "turn": 1, "content": "old", "artifact_ids": []},
            {"id": "msg_u", "role": "user", "turn": 2, "content": "q", "artifact_ids": []},
            {"id": "msg_b", "role": "assistant", "turn": 2, "content": "new", "artifact_ids": []},
        ]
    )
    event = {"status": "success", "kind": "conversation", "id": "conv_1", "message": "", "resource": snapshot}
    result = start(hook).execute_complete(context, event)
    assert (result["reply"], result["reply_message_id"], result["turn"]) == ("new", "msg_b", 2)


@pytest.mark.parametrize(
    ("event", "expected", "text"),
    [
        (
            {"status": "failed", "message": "conversation conv_1 failed: tool_error: boom"},
            AirflowException,
            "tool_error: boom",
        ),
        (
            {"status": "cancelled", "message": "conversation conv_1 was cancelled"},
            AirflowFailException,
            "cancelled",
        ),
        (
            {"status": "error", "message": "polling failed: 401", "error": {"retryable": False}},
            AirflowFailException,
            "401",
        ),
        (
            {"status": "error", "message": "polling failed: 503", "error": {"retryable": True}},
            AirflowException,
            "503",
        ),
        ({"status": "bogus"}, AirflowException, "invalid trigger event"),
    ],
)
def test_execute_complete_outcomes(hook, context, event, expected, text):
    with pytest.raises(expected, match=text) as caught:
        start(hook).execute_complete(context, {"kind": "conversation", "id": "conv_1", **event})
    if expected is AirflowException:
        assert not isinstance(caught.value, AirflowFailException)


def test_trigger_timeout_cancels_and_says_how_long_it_waited(hook, context):
    event = {"status": "timeout", "kind": "conversation", "id": "conv_1", "message": "deadline"}
    with pytest.raises(AirflowException, match=r"within timeout=30 s; it was cancelled") as caught:
        start(hook, timeout=30).execute_complete(context, event)
    assert not isinstance(caught.value, AirflowFailException)
    hook.cancel_conversation.assert_called_once_with("conv_1")


def test_timeout_keeps_the_conversation_when_asked(hook, context):
    event = {"status": "timeout", "kind": "conversation", "id": "conv_1", "message": "deadline"}
    with pytest.raises(AirflowException, match="left running"):
        start(hook, timeout=30, keep_on_timeout=True).execute_complete(context, event)
    hook.cancel_conversation.assert_not_called()


# -- waiting on the worker -----------------------------------------------------------------------------------


def test_worker_polls_every_interval_until_the_turn_completes(hook, context, no_sleep):
    hook.get_conversation.side_effect = [
        conversation("running", last_message=None),
        conversation("completed"),
    ]
    result = start(hook, poll_interval=3).execute(context)
    assert result["reply"] == "the answer" and result["status"] == "completed"
    assert no_sleep == [3, 3]
    kwargs = hook.create_conversation.call_args
    assert kwargs.args == ("agt_1", "Summarise")
    assert kwargs.kwargs["idempotency_key"] == first_key(context["ti"])


def test_worker_timeout_cancels_and_fails_with_retries(hook, context, no_sleep, monkeypatch):
    clock = iter(range(1000, 2000, 10))
    monkeypatch.setattr(time, "time", lambda: next(clock))
    hook.get_conversation.return_value = conversation("running", last_message=None)
    with pytest.raises(AirflowException, match="timeout=25 s; it was cancelled") as caught:
        start(hook, timeout=25, poll_interval=10).execute(context)
    assert not isinstance(caught.value, AirflowFailException)
    hook.cancel_conversation.assert_called_once_with("conv_1")


def test_failed_turn_retries_unless_final(hook, context):
    failed = conversation("failed", error={"code": "model_overloaded", "message": "try later"})
    hook.get_conversation.return_value = failed
    with pytest.raises(AirflowException, match="model_overloaded: try later") as caught:
        start(hook).execute(context)
    assert not isinstance(caught.value, AirflowFailException)
    with pytest.raises(AirflowFailException, match="model_overloaded"):
        start(hook, final_on_agent_failure=True).execute({**context, "task_state_store": None})


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            nx.NairiNotFoundError("no agent", status=404, code="not_found", request_id="req_4"),
            AirflowFailException,
        ),
        (
            nx.NairiValidationError("bad", status=422, code="validation_error", request_id="req_2"),
            AirflowFailException,
        ),
        (
            nx.NairiServerError("down", status=503, code="service_unavailable", request_id="req_5"),
            AirflowException,
        ),
    ],
)
def test_api_errors_are_translated(hook, context, error, expected):
    hook.create_conversation.side_effect = error
    with pytest.raises(expected, match=error.request_id) as caught:
        start(hook).execute(context)
    assert (expected is AirflowFailException) == isinstance(caught.value, AirflowFailException)


def test_wait_for_reply_false_returns_at_once_with_the_id(hook, context):
    result = start(hook, wait_for_reply=False).execute(context)
    assert result["conversation_id"] == "conv_1" and result["reply"] is None
    assert result["status"] == "queued" and result["url"] == URL


# -- agent_name --------------------------------------------------------------------------------------------


def test_agent_name_resolves_to_the_one_agent(hook, context):
    hook.list_agents.return_value = iter(
        [{"id": "agt_9", "name": "helper"}, {"id": "agt_2", "name": "other"}]
    )
    start(hook, agent_id=None, agent_name="helper").execute(context)
    assert hook.create_conversation.call_args.args[0] == "agt_9"


@pytest.mark.parametrize(
    ("agents", "text"),
    [
        ([], "no agent is named 'helper'"),
        ([{"id": "agt_1", "name": "helper"}, {"id": "agt_2", "name": "helper"}], "agt_1, agt_2"),
    ],
)
def test_agent_name_matching_none_or_several_fails_without_retries(hook, context, agents, text):
    hook.list_agents.return_value = iter(agents)
    with pytest.raises(AirflowFailException, match=text):
        start(hook, agent_id=None, agent_name="helper").execute(context)
    hook.create_conversation.assert_not_called()


def test_agent_id_and_agent_name_together_fail(hook, context):
    with pytest.raises(AirflowFailException, match="agent_id"):
        start(hook, agent_name="helper").execute(context)


# -- durable and idempotent --------------------------------------------------------------------------------


@durable_only
def test_retry_reattaches_to_a_running_conversation(hook, context, store):
    store.set("nairi_conversation", {"conversation_id": "conv_1", "turn": 1, "submission": 1})
    store.set(SUBMISSION_KEY, 1)
    hook.get_conversation.side_effect = [
        conversation("running", last_message=None),
        conversation("running", last_message=None),
        conversation("completed"),
    ]
    result = start(hook).execute(context)
    hook.create_conversation.assert_not_called()
    assert result["reply"] == "the answer"


@durable_only
def test_retry_after_completion_returns_the_reply_without_asking_again(hook, context, store, no_sleep):
    store.set("nairi_conversation", {"conversation_id": "conv_1", "turn": 1, "submission": 1})
    result = start(hook, deferrable=True).execute(context)
    hook.create_conversation.assert_not_called()
    assert result["reply"] == "the answer" and no_sleep == []


@durable_only
def test_retry_after_a_failed_conversation_starts_a_new_one_with_a_new_key(hook, context, store):
    store.set("nairi_conversation", {"conversation_id": "conv_0", "turn": 1, "submission": 1})
    store.set(SUBMISSION_KEY, 1)
    hook.get_conversation.side_effect = [
        conversation("failed", conversation_id="conv_0"),
        conversation("queued", last_message=None),
        conversation("completed"),
    ]
    start(hook).execute(context)
    key = hook.create_conversation.call_args.kwargs["idempotency_key"]
    assert key == first_key(context["ti"], 2) != first_key(context["ti"], 1)
    assert store.get("nairi_conversation") == {"conversation_id": "conv_1", "turn": 1, "submission": 2}


@durable_only
def test_crash_between_post_and_storing_the_id_replays_the_same_key(hook, context, store):
    # First try: the POST went out (submission 1 was stored first), the worker died before storing the id.
    store.set(SUBMISSION_KEY, 1)
    start(hook).execute(context)
    assert hook.create_conversation.call_args.kwargs["idempotency_key"] == first_key(context["ti"], 1)


def test_idempotency_key_is_stable_per_task_instance_and_differs_by_map_index(hook, context, ti):
    start(hook).execute({"ti": ti, "task_state_store": None})
    start(hook).execute({"ti": ti, "task_state_store": None})
    keys = [call.kwargs["idempotency_key"] for call in hook.create_conversation.call_args_list]
    assert keys[0] == keys[1] == task_idempotency_key(ti, "start-conversation", "try-1")
    ti.map_index = 3
    assert task_idempotency_key(ti, "start-conversation", "try-1") != keys[0]


# -- kill ----------------------------------------------------------------------------------------------------


def test_on_kill_cancels_the_waited_conversation_and_swallows_errors(hook, context):
    operator = start(hook)
    operator.on_kill()
    hook.cancel_conversation.assert_not_called()  # nothing started yet
    operator.execute(context)
    hook.cancel_conversation.side_effect = nx.NairiServerError("down", status=503)
    operator.on_kill()
    hook.cancel_conversation.assert_called_once_with("conv_1")


@pytest.mark.parametrize("keep", [False, True])
def test_airflow_failing_the_deferred_wait_cancels_the_conversation(hook, context, keep):
    context["ti"].xcom_push("conversation_id", "conv_7")  # pushed before deferring; kept across the deferral
    operator = start(hook, deferrable=True, keep_on_timeout=keep)
    with pytest.raises(AirflowException, match="Trigger timeout"):
        operator.resume_execution("__fail__", {"error": "Trigger timeout"}, context)
    assert hook.cancel_conversation.call_args_list == ([] if keep else [mock.call("conv_7")])


def test_resuming_normally_does_not_cancel(hook, context):
    event = {
        "status": "success",
        "kind": "conversation",
        "id": "conv_1",
        "message": "",
        "resource": conversation("completed"),
    }
    assert (
        start(hook).resume_execution("execute_complete", {"event": event}, context)["reply"] == "the answer"
    )
    hook.cancel_conversation.assert_not_called()


# -- send message ------------------------------------------------------------------------------------------


BUSY = nx.NairiConflictError("busy", status=409, code="conversation_busy")


def test_send_on_the_worker_waits_while_the_conversation_is_busy_then_for_its_turn(hook, context, no_sleep):
    hook.send_message.side_effect = [BUSY, BUSY, {"id": "msg_3", "turn": 3, "role": "user"}]
    hook.get_conversation.return_value = conversation("completed", turns=3, reply="third")
    result = send(hook, poll_interval=4).execute(context)
    assert (result["turn"], result["reply"]) == (3, "third")
    assert no_sleep == [4, 4]
    keys = {call.kwargs["idempotency_key"] for call in hook.send_message.call_args_list}
    assert len(keys) == 1


def busy_event(status="success", **fields):
    """What the trigger on the busy conversation's current turn emits."""
    snapshot = conversation("completed" if status == "success" else status, turns=2)
    return {
        "status": status,
        "kind": "conversation",
        "id": "conv_1",
        "message": "",
        "resource": snapshot,
        "error": None,
        **fields,
    }


def test_deferrable_send_waits_for_a_busy_conversation_in_the_triggerer(hook, context, no_sleep):
    hook.send_message.side_effect = [BUSY, {"id": "msg_3", "turn": 3, "role": "user"}]
    operator = send(hook, deferrable=True, poll_interval=4, timeout=600)
    with pytest.raises(TaskDeferred) as busy:
        operator.execute(context)
    assert no_sleep == []  # the worker slot is free while the earlier turn runs
    assert busy.value.method_name == "send_when_idle"
    trigger_kwargs = busy.value.trigger.serialize()[1]
    assert trigger_kwargs["turn"] is None  # whatever turn is running now
    assert trigger_kwargs["cancel_on_kill"] is False  # that turn is not this task's to cancel
    assert json.loads(json.dumps(busy.value.kwargs)) == busy.value.kwargs
    assert busy.value.kwargs["deadline"] == trigger_kwargs["deadline"]
    assert context["ti"].xcom == {}  # nothing sent yet, nothing published

    with pytest.raises(TaskDeferred) as reply:
        operator.send_when_idle(
            context, busy_event("failed"), **busy.value.kwargs
        )  # any end frees the thread
    assert reply.value.method_name == "execute_complete"
    assert reply.value.trigger.serialize()[1]["turn"] == 3
    assert reply.value.trigger.serialize()[1]["cancel_on_kill"] is True
    keys = {call.kwargs["idempotency_key"] for call in hook.send_message.call_args_list}
    assert hook.send_message.call_count == 2 and len(keys) == 1


def test_deferred_busy_wait_uploads_attachments_once(hook, context, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    hook.upload_artifact.return_value = {"id": "art_1", "name": "notes.txt", "size_bytes": 1, "sha256": "0"}
    hook.send_message.side_effect = [BUSY, {"id": "msg_3", "turn": 3, "role": "user"}]
    operator = send(hook, deferrable=True, wait_for_reply=False, attachments=[str(tmp_path / "notes.txt")])
    with pytest.raises(TaskDeferred) as busy:
        operator.execute(context)
    assert busy.value.kwargs["artifact_ids"] == ["art_1"]
    operator.send_when_idle(context, busy_event(), **busy.value.kwargs)
    assert hook.upload_artifact.call_count == 1
    assert [call.kwargs["artifact_ids"] for call in hook.send_message.call_args_list] == [
        ["art_1"],
        ["art_1"],
    ]


def test_deferred_busy_wait_past_the_timeout_fails_without_sending(hook, context):
    hook.send_message.side_effect = [BUSY]
    operator = send(hook, deferrable=True, timeout=15)
    with pytest.raises(TaskDeferred) as busy:
        operator.execute(context)
    timeout = busy_event("timeout", resource=None)
    with pytest.raises(AirflowException, match="stayed busy for timeout=15 s; the message was not sent"):
        operator.send_when_idle(context, timeout, **busy.value.kwargs)
    assert hook.send_message.call_count == 1


def test_deferred_busy_wait_keeps_its_first_deadline(hook, context, monkeypatch):
    """Busy again after the wait: the deadline is the first one, not ``timeout`` from the resume."""
    hook.send_message.side_effect = BUSY
    operator = send(hook, deferrable=True, timeout=15)
    with pytest.raises(TaskDeferred) as busy:
        operator.execute(context)
    monkeypatch.setattr(time, "time", lambda: busy.value.kwargs["deadline"] + 1)
    with pytest.raises(AirflowException, match="stayed busy for timeout=15 s"):
        operator.send_when_idle(context, busy_event(), **busy.value.kwargs)


def test_send_gives_up_when_busy_past_the_timeout(hook, context, monkeypatch):
    clock = iter(range(1000, 2000, 10))
    monkeypatch.setattr(time, "time", lambda: next(clock))
    hook.send_message.side_effect = nx.NairiConflictError("busy", status=409, code="conversation_busy")
    with pytest.raises(AirflowException, match="stayed busy for timeout=15 s"):
        send(hook, timeout=15).execute(context)


def test_send_other_conflicts_fail_at_once(hook, context):
    hook.send_message.side_effect = nx.NairiConflictError("reused", status=409, code="idempotency_key_reused")
    with pytest.raises(AirflowFailException, match="idempotency_key_reused"):
        send(hook).execute(context)
    assert hook.send_message.call_count == 1


def test_send_does_not_take_an_earlier_turn_for_its_reply(hook, context, no_sleep):
    hook.send_message.return_value = {"id": "msg_2", "turn": 2, "role": "user"}
    hook.get_conversation.side_effect = [
        conversation("completed", turns=1),  # read right after the send, before the API counted turn 2
        conversation("completed", turns=1),
        conversation("completed", turns=2, reply="second"),
    ]
    result = send(hook, poll_interval=1).execute(context)
    assert (result["turn"], result["reply"]) == (2, "second")


def test_a_resumed_conversation_attaches_its_ids_to_the_asset_event_and_lineage(hook, context):
    asset = Asset("nairi://conversations/summaries")
    events = OutletEventAccessors()
    event = make_event(
        "success", kind="conversation", resource_id="conv_1", message="", resource=conversation("completed")
    )
    operator = start(hook, outlets=[asset])
    result = operator.resume_execution(
        "execute_complete", {"event": event}, {**context, "outlet_events": events}
    )
    assert events[asset].extra == {
        "conversation_id": "conv_1",
        "status": "completed",
        "turn": result["turn"],
        "reply_message_id": result["reply_message_id"],
        "artifact_ids": result["artifact_ids"],
    }
    assert "the answer" not in json.dumps(events[asset].extra)
    facets = operator.lineage("nairi://api.nairi.ai", result)
    assert facets.run_facets["externalQuery"]["externalQueryId"] == "conv_1"
    assert facets.job_facets["nairi_agent"] == {"agentId": "agt_1", "namespace": "nairi://api.nairi.ai"}
