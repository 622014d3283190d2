"""Wait for a conversation started elsewhere: :class:`NairiConversationSensor`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_nairi.links import XCOM_CONVERSATION_ID, XCOM_CONVERSATION_URL, NairiConversationLink
from airflow_provider_nairi.resources.conversation import (
    conversation_event,
    conversation_result,
    latest_reply,
)
from airflow_provider_nairi.sensors.base import NairiBaseSensor
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger
from airflow_provider_nairi.validation import check_flag

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class NairiConversationSensor(NairiBaseSensor):
    """Wait until the latest turn of ``conversation_id`` ends; return the same XCom dict as the operators.

    .. important::

        - **Modes, soft_fail, timeout**: see :class:`~airflow_provider_nairi.sensors.base.NairiBaseSensor`
          (deferred: :class:`~airflow_provider_nairi.triggers.conversation.NairiConversationTrigger`).
        - **Outcomes.** ``completed``: success. ``failed``: task failure with the agent's error (Airflow
          retries apply unless ``final_on_agent_failure``). ``cancelled``: final failure. ``timeout`` passed:
          ``AirflowSensorTimeout``. The sensor does not cancel the conversation: it does not own it (neither
          a kill on the worker nor one in the triggerer: a clear, mark failed or mark success of the sensor
          leaves it running).

    :param conversation_id: the conversation to watch (templated).
    :param final_on_agent_failure: a failed turn fails the task without Airflow retries.
    :param poll_interval, deferrable, max_transient_errors, conn_id: see
        :class:`~airflow_provider_nairi.sensors.base.NairiBaseSensor`.
    """

    template_fields = ("conversation_id",)
    operator_extra_links = (NairiConversationLink(),)

    def __init__(self, *, conversation_id: str, final_on_agent_failure: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.conversation_id = conversation_id
        self.final_on_agent_failure = check_flag("final_on_agent_failure", final_on_agent_failure)
        self.final_on_failure = self.final_on_agent_failure

    def read_event(self, context: Context) -> dict[str, Any] | None:
        url = self.hook.dashboard_url("conversations", self.conversation_id)
        context["ti"].xcom_push(key=XCOM_CONVERSATION_ID, value=self.conversation_id)
        context["ti"].xcom_push(key=XCOM_CONVERSATION_URL, value=url)
        return conversation_event(self.api.get_conversation(self.conversation_id))

    def result(self, context: Context, event: dict[str, Any]) -> dict[str, Any]:
        conversation = event["resource"]
        url = self.hook.dashboard_url("conversations", str(conversation["id"]))
        return conversation_result(conversation, latest_reply(self.api, conversation), url)

    def trigger(self, deadline: float) -> NairiConversationTrigger:
        return NairiConversationTrigger(
            conn_id=self.conn_id,
            resource_id=self.conversation_id,
            deadline=deadline,
            poll_interval=self.poll_interval,
            max_transient_errors=self.max_transient_errors,
            cancel_on_kill=False,  # the sensor watches a conversation it does not own
        )
