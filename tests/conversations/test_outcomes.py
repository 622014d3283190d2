"""outcomes.py: every error, remote state and event ends the task the way the outcome table says."""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSensorTimeout

from airflow_provider_nairi import exceptions as nx
from airflow_provider_nairi.outcomes import (
    EVENT_STATUSES,
    error_event,
    event_for_resource,
    make_event,
    raise_for_error,
    raise_for_event,
    validate_event,
)

FINAL = [
    nx.NairiAuthError("bad key", status=401, code="unauthorized", request_id="req_1"),
    nx.NairiAuthError("denied", status=403, code="insufficient_scope", request_id="req_2"),
    nx.NairiNotFoundError("no such agent", status=404, code="not_found", request_id="req_3"),
    nx.NairiPayloadTooLargeError("too big", status=413, code="payload_too_large", request_id="req_4"),
    nx.NairiValidationError("bad", status=422, code="validation_error", request_id="req_5"),
    nx.NairiConflictError("busy", status=409, code="conflict", request_id="req_6"),
    nx.NairiConfigurationError("agent key given", code="agent_key_not_allowed"),
]
RETRYABLE = [
    nx.NairiRateLimitError("slow down", status=429, code="rate_limited", request_id="req_7"),
    nx.NairiServerError("boom", status=503, code="service_unavailable", request_id="req_8"),
    nx.NairiConnectionError("refused"),
]


@pytest.mark.parametrize("error", FINAL, ids=lambda e: f"{e.status}-{e.code}")
def test_non_retryable_errors_fail_without_retries_and_name_code_message_request_id(error):
    with pytest.raises(AirflowFailException) as caught:
        raise_for_error(error)
    text = str(caught.value)
    assert error.code in text and error.message in text
    if error.request_id:
        assert error.request_id in text
    assert caught.value.__cause__ is error


@pytest.mark.parametrize("error", RETRYABLE, ids=lambda e: f"{e.status}-{e.code}")
def test_retryable_errors_are_plain_failures_so_airflow_retries_apply(error):
    with pytest.raises(AirflowException) as caught:
        raise_for_error(error)
    assert not isinstance(caught.value, AirflowFailException)
    assert error.message in str(caught.value)


def conversation(status, **fields):
    return {"id": "conv_1", "status": status, "turns": 1, "error": None, **fields}


@pytest.mark.parametrize("state", ["queued", "running"])
def test_working_states_are_not_terminal(state):
    assert event_for_resource("conversation", conversation(state)) is None
    assert event_for_resource("video", {"id": "vid_1", "status": "processing"}) is None


def test_completed_conversation_is_a_success_event_carrying_the_snapshot():
    event = event_for_resource("conversation", conversation("completed", last_message={"content": "hi"}))
    assert event["status"] == "success"
    assert raise_for_event(event)["resource"]["last_message"]["content"] == "hi"
    assert json.loads(json.dumps(event)) == event


def test_failed_turn_carries_the_agent_error_and_is_retryable_unless_made_final():
    snapshot = conversation("failed", error={"code": "tool_error", "message": "the tool crashed"})
    event = event_for_resource("conversation", snapshot)
    with pytest.raises(AirflowException) as caught:
        raise_for_event(event)
    assert not isinstance(caught.value, AirflowFailException)
    assert "tool_error" in str(caught.value) and "the tool crashed" in str(caught.value)
    with pytest.raises(AirflowFailException, match="tool_error"):
        raise_for_event(event, final_on_failure=True)


def test_cancelled_by_someone_else_is_final_and_says_so():
    with pytest.raises(AirflowFailException, match="cancelled"):
        raise_for_event(event_for_resource("conversation", conversation("cancelled")))


def test_video_states_map_too():
    assert event_for_resource("video", {"id": "vid_1", "status": "ready"})["status"] == "success"
    with pytest.raises(AirflowException, match="decode"):
        raise_for_event(
            event_for_resource("video", {"id": "vid_1", "status": "failed", "error": {"code": "decode"}})
        )


def test_timeout_event_raises_the_callers_timeout_exception():
    event = make_event("timeout", kind="conversation", resource_id="conv_1", message="waited 60 s")
    with pytest.raises(AirflowException, match="waited 60 s") as caught:
        raise_for_event(event)
    assert not isinstance(caught.value, AirflowFailException)
    with pytest.raises(AirflowSensorTimeout):
        raise_for_event(event, timeout_exception=AirflowSensorTimeout)


def test_error_events_keep_the_retry_decision_of_the_error():
    with pytest.raises(AirflowFailException, match="req_1"):
        raise_for_event(error_event("conversation", "conv_1", FINAL[0]))
    with pytest.raises(AirflowException) as caught:
        raise_for_event(error_event("conversation", "conv_1", RETRYABLE[1]))
    assert not isinstance(caught.value, AirflowFailException)


@pytest.mark.parametrize("event", [None, "success", {}, {"status": "done"}, ["success"]])
def test_malformed_events_fail_the_task(event):
    with pytest.raises(AirflowException, match="invalid trigger event"):
        validate_event(event)


def test_make_event_refuses_unknown_statuses():
    assert {"success", "failed", "cancelled", "timeout", "error"} == EVENT_STATUSES
    with pytest.raises(ValueError, match="unknown event status"):
        make_event("done", kind="video", resource_id="vid_1", message="")
