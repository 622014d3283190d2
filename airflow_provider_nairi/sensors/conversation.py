"""Wait for a conversation started elsewhere: :class:`NairiConversationSensor`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    AirflowSkipException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_nairi.exceptions import NairiError
from airflow_provider_nairi.hook_mixin import NairiHookMixin
from airflow_provider_nairi.links import XCOM_CONVERSATION_URL, NairiConversationLink
from airflow_provider_nairi.operators.conversation import (
    XCOM_CONVERSATION_ID,
    conversation_result,
    latest_reply,
)
from airflow_provider_nairi.outcomes import raise_for_error, raise_for_event
from airflow_provider_nairi.triggers.conversation import NairiConversationTrigger, conversation_event
from airflow_provider_nairi.validation import check_count, check_flag, check_sensor_timing

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


T = TypeVar("T")


class NairiConversationSensor(NairiHookMixin, BaseSensorOperator):
    """Wait until the latest turn of ``conversation_id`` ends; return the same XCom dict as the operators.

    .. important::

        - **Modes.** ``poke`` and ``reschedule`` read the conversation every ``poke_interval`` seconds on a
          worker; ``deferrable=True`` reads it first (no deferral when it has already ended), then waits in
          the triggerer (:class:`~airflow_provider_nairi.triggers.conversation.NairiConversationTrigger`).
        - **Outcomes.** ``completed``: success. ``failed``: task failure with the agent's error (Airflow
          retries apply unless ``final_on_agent_failure``). ``cancelled``: final failure. ``timeout`` passed:
          ``AirflowSensorTimeout``. The sensor does not cancel the conversation: it does not own it (neither
          a kill on the worker nor one in the triggerer: a clear, mark failed or mark success of the sensor
          leaves it running).
        - **soft_fail** skips the task on *any* of these failures and on API errors, in every mode alike
          (Airflow's deferred path skips on any failure; the poke path is aligned with it here).

    :param conversation_id: the conversation to watch (templated).
    :param deferrable: wait in the triggerer. Default: ``[operators] default_deferrable``.
    :param final_on_agent_failure: a failed turn fails the task without Airflow retries.
    :param max_transient_errors: deferrable only: transient errors tolerated in a row while polling.
    :param conn_id: the Nairi connection.
    """

    template_fields = ("conversation_id",)
    operator_extra_links = (NairiConversationLink(),)

    def __init__(
        self,
        *,
        conversation_id: str,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        final_on_agent_failure: bool = False,
        max_transient_errors: int = 5,
        conn_id: str = "nairi_default",
        **kwargs: Any,
    ) -> None:
        check_sensor_timing(kwargs)
        super().__init__(**kwargs)
        check_count("max_transient_errors", max_transient_errors)
        check_flag("final_on_agent_failure", final_on_agent_failure)
        self.conversation_id = conversation_id
        self.deferrable = deferrable
        self.final_on_agent_failure = final_on_agent_failure
        self.max_transient_errors = max_transient_errors
        self.conn_id = conn_id

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        event = self.guarded(self.read_event, context)
        if event is not None:
            return self.guarded(self.finish, context, event)
        self.defer(
            trigger=NairiConversationTrigger(
                conn_id=self.conn_id,
                resource_id=self.conversation_id,
                deadline=time.time() + self.timeout,
                poll_interval=self.poke_interval,
                max_transient_errors=self.max_transient_errors,
                cancel_on_kill=False,  # the sensor watches a conversation it does not own
            ),
            method_name="execute_complete",
        )

    def poke(self, context: Context) -> bool | PokeReturnValue:
        event = self.guarded(self.read_event, context)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self.guarded(self.finish, context, event))

    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: the XCom dict, or the outcome of the event."""
        return self.guarded(self.finish, context, event)

    def read_event(self, context: Context) -> dict[str, Any] | None:
        url = self.hook.dashboard_url("conversations", self.conversation_id)
        context["ti"].xcom_push(key=XCOM_CONVERSATION_ID, value=self.conversation_id)
        context["ti"].xcom_push(key=XCOM_CONVERSATION_URL, value=url)
        return conversation_event(self.hook.get_conversation(self.conversation_id))

    def finish(self, context: Context, event: Any) -> dict[str, Any]:
        checked = raise_for_event(
            event, final_on_failure=self.final_on_agent_failure, timeout_exception=AirflowSensorTimeout
        )
        conversation = checked["resource"]
        url = self.hook.dashboard_url("conversations", str(conversation["id"]))
        return conversation_result(conversation, latest_reply(self.hook, conversation), url)

    def guarded(self, call: Callable[..., T], *args: Any) -> T:
        """Run ``call``: Nairi errors become outcomes; with ``soft_fail`` any failure skips the task."""
        try:
            try:
                return call(*args)
            except NairiError as error:
                raise_for_error(error)
        except AirflowSkipException:
            raise
        except AirflowException as error:
            if self.soft_fail:
                raise AirflowSkipException(f"soft_fail: {error}") from error
            raise
