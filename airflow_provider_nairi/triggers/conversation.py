"""Wait for a conversation's latest turn in the triggerer: :class:`NairiConversationTrigger`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.resources.conversation import (
    ACTIVE_STATES,
    EVENT_SNAPSHOT_KEYS,
    conversation_event,
    slim_event,
)
from airflow_provider_nairi.triggers.polling import NairiPollingTrigger

if TYPE_CHECKING:
    from airflow_provider_nairi.client.endpoints import Call
    from airflow_provider_nairi.hooks.nairi import NairiAsyncHook

# ACTIVE_STATES, EVENT_SNAPSHOT_KEYS, conversation_event and slim_event moved to resources.conversation.
__all__ = [
    "ACTIVE_STATES",
    "EVENT_SNAPSHOT_KEYS",
    "NairiConversationTrigger",
    "conversation_event",
    "slim_event",
]


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
        self._read: Call[dict[str, Any]] | None = None  # the poll's call, built at the first poll

    def extra_kwargs(self) -> dict[str, Any]:
        return {"turn": self.turn, "cancel_on_kill": self.cancel_on_kill}

    async def poll(self, hook: NairiAsyncHook) -> dict[str, Any] | None:
        if self._read is None:  # the same GET every poll: built once (its path checked then)
            from airflow_provider_nairi.client.endpoints import Endpoints  # noqa: PLC0415 (not at DAG parse)

            self._read = Endpoints.get_conversation.build(self.resource_id)
        conversation = await (await hook.get_async_client()).send(self._read)
        self.remote_state = str(conversation.get("status"))
        event = conversation_event(conversation, self.turn)
        return None if event is None else slim_event(event)

    async def cancel(self, hook: NairiAsyncHook) -> bool:
        if not self.cancel_on_kill:
            return False
        await (await hook.get_async_client()).cancel_conversation(self.resource_id)
        return True
