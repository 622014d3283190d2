"""Wait for a conversation's latest turn in the triggerer: :class:`NairiConversationTrigger`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.outcomes import event_for_resource
from airflow_provider_nairi.triggers.polling import NairiPollingTrigger

if TYPE_CHECKING:
    from airflow_provider_nairi.hooks.nairi import NairiAsyncHook

#: Conversation states in which the agent is still working on the latest message.
ACTIVE_STATES = frozenset({"queued", "running"})


#: The keys of a conversation snapshot a trigger event carries: what the resuming task needs to find the reply
#: of the turn (it reads the reply itself), never the reply or the messages.
EVENT_SNAPSHOT_KEYS = ("id", "status", "turns")


def slim_event(event: dict[str, Any]) -> dict[str, Any]:
    """``event`` with its conversation snapshot cut to :data:`EVENT_SNAPSHOT_KEYS`."""
    resource = event.get("resource") or {}
    return {**event, "resource": {key: resource.get(key) for key in EVENT_SNAPSHOT_KEYS}}


def conversation_event(conversation: Mapping[str, Any], turn: int | None = None) -> dict[str, Any] | None:
    """The event a conversation snapshot ends in, or ``None`` while its latest turn is still running.

    :param turn: the turn this task waits for. A snapshot that does not count that turn yet (read just before
        the API registered the message) is "still working", so an earlier turn's reply is never taken for it.
    """
    if turn is not None and int(conversation.get("turns") or 0) < turn:
        return None
    return event_for_resource("conversation", conversation)


class NairiConversationTrigger(NairiPollingTrigger):
    """Poll ``GET /conversations/{id}`` until the latest turn is completed, failed or cancelled.

    Emits one event (:func:`airflow_provider_nairi.outcomes.make_event`) whose ``resource`` is the
    conversation's ``id``, ``status`` and ``turns`` only (the resuming task reads the reply of that turn:
    an event never carries the agent's text, which Airflow logs), or a ``timeout`` / ``error`` event. A
    kill of the deferred task (Airflow 3.3+: mark failed or success) cancels the conversation
    (``POST /conversations/{id}/cancel``) unless ``cancel_on_kill`` is false or the task was cleared (its
    next try takes the conversation over).

    :param turn: the turn to wait for (see :func:`conversation_event`); ``None``: whatever turn is last.
    :param cancel_on_kill: cancel the conversation when the deferred task is killed; false when the task
        waits for a turn that is not its own (a send waiting for a busy conversation).
    :param conn_id, resource_id, deadline, poll_interval, max_transient_errors: see
        :class:`~airflow_provider_nairi.triggers.polling.NairiPollingTrigger` (``resource_id`` is the
        conversation id).
    """

    kind = "conversation"

    def __init__(self, *, turn: int | None = None, cancel_on_kill: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.turn = turn
        self.cancel_on_kill = cancel_on_kill

    def extra_kwargs(self) -> dict[str, Any]:
        return {"turn": self.turn, "cancel_on_kill": self.cancel_on_kill}

    async def poll(self, hook: NairiAsyncHook) -> dict[str, Any] | None:
        conversation = await hook.get_conversation(self.resource_id)
        self.remote_state = str(conversation.get("status"))
        event = conversation_event(conversation, self.turn)
        return None if event is None else slim_event(event)

    async def cancel(self, hook: NairiAsyncHook) -> bool:
        if not self.cancel_on_kill:
            return False
        await hook.cancel_conversation(self.resource_id)
        return True
