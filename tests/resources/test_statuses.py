"""resources: each status knows whether it ends the wait and how; an unknown status is the server's fault."""

from __future__ import annotations

import pytest

from airflow_provider_nairi.exceptions import NairiServerError
from airflow_provider_nairi.outcomes import TERMINAL_STATES
from airflow_provider_nairi.resources.conversation import (
    ACTIVE_STATES,
    ConversationStatus,
    conversation_event,
)
from airflow_provider_nairi.resources.video import VideoStatus, videos_event

CONVERSATION = {
    # status: (is_terminal, is_success, event status)
    "queued": (False, False, None),
    "running": (False, False, None),
    "completed": (True, True, "success"),
    "failed": (True, False, "failed"),
    "cancelled": (True, False, "cancelled"),
}
VIDEO = {
    "processing": (False, False, None),
    "ready": (True, True, "success"),
    "failed": (True, False, "failed"),
}


@pytest.mark.parametrize(("enum", "table"), [(ConversationStatus, CONVERSATION), (VideoStatus, VIDEO)])
def test_each_member_knows_whether_it_is_terminal_and_successful(enum, table):
    assert {member.value for member in enum} == set(table)
    for value, (terminal, success, event_status) in table.items():
        member = enum.of({"id": "x", "status": value})
        assert member == value  # a str: compares equal to the API's text
        assert (member.is_terminal, member.is_success, member.event_status) == (
            terminal,
            success,
            event_status,
        )


def test_the_public_state_tables_are_derived_from_the_enums():
    assert {"queued", "running"} == ACTIVE_STATES
    assert TERMINAL_STATES == {
        "conversation": {"completed": "success", "failed": "failed", "cancelled": "cancelled"},
        "video": {"ready": "success", "failed": "failed"},
    }


@pytest.mark.parametrize("status", ["paused", "COMPLETED", "", None, 3, ["completed"]])
def test_a_status_outside_the_contract_is_a_retryable_server_error(status):
    with pytest.raises(
        NairiServerError, match=r"unknown conversation status .* for conversation conv_1"
    ) as caught:
        conversation_event({"id": "conv_1", "status": status, "turns": 1})
    assert caught.value.retryable and caught.value.code == "malformed_answer"
    with pytest.raises(NairiServerError, match=r"unknown video status .*expected one of processing, ready"):
        videos_event(["vid_1"], [{"id": "vid_1", "status": status}])


def test_a_long_hostile_status_is_cut_in_the_message():
    with pytest.raises(NairiServerError) as caught:
        conversation_event({"id": "conv_1", "status": "x" * 10_000})
    assert len(str(caught.value)) < 400
