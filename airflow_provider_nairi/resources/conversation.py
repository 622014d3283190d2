"""A conversation, as the provider waits for it: its statuses, its trigger event and its XCom result.

The XCom result of every conversation operator and sensor (:func:`conversation_result`)::

    {"conversation_id": "conv_...", "status": "completed", "turn": 1, "reply": "the agent's text",
     "reply_message_id": "msg_...", "artifact_ids": ["art_..."], "url": "https://app.nairi.ai/conversations/..."}
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.resources.events import (
    CANCELLED,
    FAILED,
    SUCCESS,
    Event,
    RemoteStatus,
    snapshot_event,
)

if TYPE_CHECKING:
    from airflow_provider_nairi.client.api import NairiApi

KIND = "conversation"


class ConversationStatus(RemoteStatus):
    """The status of a conversation's latest turn (``GET /conversations/{id}``)."""

    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed", SUCCESS
    FAILED = "failed", FAILED
    CANCELLED = "cancelled", CANCELLED


#: Conversation states in which the agent is still working on the latest message.
ACTIVE_STATES = frozenset(status.value for status in ConversationStatus if not status.is_terminal)

#: The keys of a conversation snapshot a trigger event carries: what the resuming task needs to find the reply
#: of the turn (it reads the reply itself), never the reply or the messages.
EVENT_SNAPSHOT_KEYS = ("id", "status", "turns")


def slim_event(event: Event) -> Event:
    """``event`` with its conversation snapshot cut to :data:`EVENT_SNAPSHOT_KEYS`."""
    resource = event.get("resource") or {}
    return {**event, "resource": {key: resource.get(key) for key in EVENT_SNAPSHOT_KEYS}}


def conversation_event(conversation: Mapping[str, Any], turn: int | None = None) -> Event | None:
    """The event a conversation snapshot ends in, or ``None`` while its latest turn is still running.

    :param turn: the turn this task waits for. A snapshot that does not count that turn yet (read just before
        the API registered the message) is "still working", so an earlier turn's reply is never taken for it.
    :raises NairiServerError: a status the contract does not name.
    """
    status = ConversationStatus.of(conversation)
    if turn is not None and int(conversation.get("turns") or 0) < turn:
        return None
    if status.event_status is None:  # still working (snapshot_event's own test, made here: every poll)
        return None
    return snapshot_event(status, conversation)


def latest_reply(api: NairiApi, conversation: Mapping[str, Any]) -> dict[str, Any] | None:
    """The assistant's message of the conversation's latest turn, or ``None`` when it has none (yet).

    Read from the snapshot's ``last_message`` when that is the reply; otherwise from the message list. A
    snapshot without ``last_message`` (a trigger event's, which never carries the reply) is completed by
    reading the conversation first.
    """
    turn = conversation.get("turns")
    if "last_message" not in conversation:
        last = api.get_conversation(str(conversation["id"])).get("last_message")
    else:
        last = conversation.get("last_message")
    if last and last.get("role") == "assistant" and last.get("turn") == turn:
        return dict(last)
    replies = [
        message
        for message in api.list_messages(str(conversation["id"]))
        if message.get("role") == "assistant" and message.get("turn") == turn
    ]
    return replies[-1] if replies else None


def conversation_result(
    conversation: Mapping[str, Any], reply: Mapping[str, Any] | None, url: str
) -> dict[str, Any]:
    """The XCom dict of a conversation snapshot and its latest reply (see the module docstring)."""
    return {
        "conversation_id": conversation["id"],
        "status": conversation.get("status"),
        "turn": conversation.get("turns"),
        "reply": reply.get("content") if reply else None,
        "reply_message_id": reply.get("id") if reply else None,
        "artifact_ids": list(reply.get("artifact_ids") or []) if reply else [],
        "url": url,
    }
