"""``NairiBaseSensor``: the waiting options of every Nairi sensor and one translation of its outcomes."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowSensorTimeout, BaseSensorOperator, PokeReturnValue

from airflow_provider_nairi.hook_mixin import NairiHookMixin
from airflow_provider_nairi.options import CONVERSATION_POLL_INTERVAL, resolve_deferrable
from airflow_provider_nairi.outcomes import airflow_outcome, raise_for_event
from airflow_provider_nairi.resources.waiting import WaitOptions
from airflow_provider_nairi.validation import check_seconds, check_sensor_timing

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from airflow.triggers.base import BaseTrigger


class NairiBaseSensor(NairiHookMixin, BaseSensorOperator):
    """Base of the Nairi sensors: read the remote work, succeed with its XCom value, or end as the outcome
    table of :mod:`airflow_provider_nairi.outcomes` says, in every mode alike.

    - **Modes.** ``poke`` and ``reschedule`` read the work every ``poll_interval`` seconds on a worker
      (Airflow's own loop); ``deferrable=True`` reads it once (no deferral when it has already ended), then
      waits in the triggerer, which tolerates ``max_transient_errors`` transient API errors in a row.
    - **soft_fail** skips the task on *any* failure (remote failure, timeout, API error) in every mode.
    - ``timeout`` is the sensor's usual parameter: an absolute budget; when it passes the sensor raises
      ``AirflowSensorTimeout``.

    Subclasses implement :meth:`read_event` (one read: an event, or ``None`` while the work runs),
    :meth:`result` (the XCom value of a ``success`` event) and :meth:`trigger`.

    :param poll_interval: seconds between two reads (an alias of Airflow's ``poke_interval``); ``None``: the
        resource's (:attr:`default_poll_interval`: conversation 5, video 30).
    :param deferrable: wait in the triggerer. Default: ``[operators] default_deferrable``, read when the task
        is built.
    :param max_transient_errors: transient API errors tolerated in a row by the trigger (deferrable only: a
        poke that fails fails the try, and Airflow's retries apply).
    :param conn_id: the Nairi connection.
    """

    #: A ``failed`` remote work fails the task without Airflow retries.
    final_on_failure: bool = False
    #: ``poll_interval`` when neither it nor ``poke_interval`` is given: the resource's.
    default_poll_interval: ClassVar[float] = CONVERSATION_POLL_INTERVAL

    def __init__(
        self,
        *,
        poll_interval: float | None = None,
        deferrable: bool | None = None,
        max_transient_errors: int = 5,
        conn_id: str = "nairi_default",
        **kwargs: Any,
    ) -> None:
        if poll_interval is not None:
            check_seconds("poll_interval", poll_interval)
            if "poke_interval" in kwargs and kwargs["poke_interval"] != poll_interval:
                raise ValueError("poll_interval is an alias of poke_interval: give one of them.")
            kwargs["poke_interval"] = poll_interval
        kwargs.setdefault("poke_interval", self.default_poll_interval)
        check_sensor_timing(kwargs)
        super().__init__(**kwargs)
        WaitOptions(float(self.poke_interval), None, max_transient_errors)
        self.deferrable = resolve_deferrable(deferrable)
        self.max_transient_errors = max_transient_errors
        self.conn_id = conn_id

    @property
    def poll_interval(self) -> float:
        """Seconds between two reads (``poke_interval``)."""
        return float(self.poke_interval)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            self.prepare_checked(context)
            return super().execute(context)  # Airflow's poke/reschedule loop: never wrapped
        return self.execute_deferrable(context)

    @airflow_outcome
    def prepare_checked(self, context: Context) -> None:
        self.prepare(context)

    @airflow_outcome
    def execute_deferrable(self, context: Context) -> Any:
        """Read once; return at once when the work has ended, else defer until :meth:`execute_complete`."""
        self.prepare(context)
        done = self.poke(context)
        if isinstance(done, PokeReturnValue):
            return done.xcom_value
        self.defer(trigger=self.trigger(time.time() + self.timeout), method_name="execute_complete")

    @airflow_outcome
    def poke(self, context: Context) -> bool | PokeReturnValue:
        event = self.read_event(context)
        if event is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self.finish(context, event))

    @airflow_outcome
    def execute_complete(self, context: Context, event: dict[str, Any]) -> Any:
        """Resume after the trigger: the XCom value, or the outcome of the event."""
        return self.finish(context, event)

    @airflow_outcome
    def resume_execution(self, next_method: str, next_kwargs: dict[str, Any] | None, context: Context) -> Any:
        return super().resume_execution(next_method, next_kwargs, context)

    def finish(self, context: Context, event: Any) -> Any:
        """The XCom value of a ``success`` event; the outcome of any other."""
        checked = raise_for_event(
            event, final_on_failure=self.final_on_failure, timeout_exception=AirflowSensorTimeout
        )
        return self.result(context, checked)

    def prepare(self, context: Context) -> None:
        """Before the first read (checks, links). Default: nothing."""

    def read_event(self, context: Context) -> dict[str, Any] | None:
        """One read of the remote work: the event it ended in, or ``None``."""
        raise NotImplementedError

    def result(self, context: Context, event: dict[str, Any]) -> Any:
        """The XCom value of a ``success`` event."""
        raise NotImplementedError

    def trigger(self, deadline: float) -> BaseTrigger:
        """The trigger that waits until ``deadline`` (epoch seconds) in the triggerer."""
        raise NotImplementedError
