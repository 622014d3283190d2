"""A generic async polling trigger: wait in the triggerer, not on a worker, until remote work ends.

:class:`NairiPollingTrigger` is the base of the provider's triggers (conversations, videos). A subclass says
what one poll is (:meth:`~NairiPollingTrigger.poll`: return an event to stop, ``None`` to keep waiting) and
how to cancel the work (:meth:`~NairiPollingTrigger.cancel`); the base does the rest:

- **Serialisation.** Only JSON values: the connection id, what the trigger waits for
  (:meth:`~NairiPollingTrigger.identity`: ``resource_id`` for one resource; a subclass waiting for something
  else says what identifies it, e.g. the video trigger's ``video_ids`` list), the absolute deadline (epoch
  seconds, so a trigger restarted on another triggerer keeps the original deadline), the poll interval and the
  number of transient errors tolerated in a row, plus a subclass's :meth:`~NairiPollingTrigger.extra_kwargs`.
  Never the API key (the triggerer reads the connection itself) and never a callable.
- **The wait** is :meth:`airflow_provider_nairi.resources.waiting.Waiter.wait_async`: the same decisions as a
  wait on a worker (transient errors tolerated ``max_transient_errors`` in a row, ``Retry-After`` honoured,
  no busy loop, the deadline, the logs, an answer :meth:`~NairiPollingTrigger.poll` cannot read counted as a
  malformed answer naming the call and the request id of the latest answer). Events are
  JSON dicts from :mod:`airflow_provider_nairi.resources.events`; the task turns them into outcomes with
  :func:`airflow_provider_nairi.outcomes.raise_for_event`. They carry only what the resuming task needs
  (Airflow logs each one at INFO, "Trigger fired event"): a subclass slims the resource snapshot.
- **Kill.** On Airflow 3.3+, when a user acts on the deferred task (mark failed, mark success, clear), the
  triggerer calls :meth:`on_kill`. It first asks Airflow for the task instance's state *now*: a cleared task
  (or one up for retry) runs again, and its next try reattaches to the same remote work, so nothing is
  cancelled. Otherwise (marked failed or success, deleted) it runs the subclass's cancel (if it has one)
  within :attr:`CANCEL_TIMEOUT` seconds and logs, never raises, its errors. A triggerer restart does not
  cancel anything.

The async hook (and aiohttp) is imported inside :meth:`run`, never when a DAG file is parsed."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_nairi.hooks._class_log import ClassLogMixin
from airflow_provider_nairi.resources.waiting import STILL_WAITING_EVERY, Waiter, WaitLog, seconds_left
from airflow_provider_nairi.validation import check_count, check_seconds

if TYPE_CHECKING:
    from airflow_provider_nairi.hooks.nairi import NairiAsyncHook

__all__ = ["STILL_WAITING_EVERY", "NairiPollingTrigger", "WaitLog"]  # WaitLog moved to resources.waiting

#: Task instance states in which a task will run (again): a clear sets ``None``, then the scheduler moves the
#: next try through ``scheduled``, ``queued``, ``running`` (and ``deferred`` once it waits again).
STATES_THAT_RUN_AGAIN = frozenset(
    {None, "scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule", "restarting"}
)


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]


class NairiPollingTrigger(ClassLogMixin, BaseTrigger):
    """Poll a Nairi resource until :meth:`poll` returns an event or the deadline passes.

    :param conn_id: the Nairi connection (read by the triggerer; its key never enters the kwargs).
    :param resource_id: what the events and log lines name: the id of the resource waited for (the
        conversation's); a subclass waiting for several resources passes the id its events carry and says in
        :meth:`identity` what it serializes instead.
    :param deadline: absolute deadline, epoch seconds (``time.time()``), or ``None`` to wait without one.
        When it passes, a ``timeout`` event is emitted; the work itself is left alone (the task decides).
    :param poll_interval: seconds between two polls; must be positive.
    :param max_transient_errors: retryable errors tolerated in a row before giving up with an ``error`` event.
    """

    #: The resource kind (``conversation``, ``video``; set by subclasses).
    kind: ClassVar[str] = "resource"
    #: Seconds :meth:`on_kill` gives the cancel call before it gives up (logged).
    CANCEL_TIMEOUT: ClassVar[float] = 30.0

    def __init__(
        self,
        *,
        conn_id: str,
        resource_id: str,
        deadline: float | None,
        poll_interval: float = 5.0,
        max_transient_errors: int = 5,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        check_seconds("poll_interval", poll_interval)
        check_count("max_transient_errors", max_transient_errors)
        check_seconds("deadline", deadline, optional=True)  # epoch seconds: nan would never pass
        self.conn_id = conn_id
        self.resource_id = resource_id
        self.deadline = deadline
        self.poll_interval = float(poll_interval)
        self.max_transient_errors = int(max_transient_errors)
        #: The remote state the latest :meth:`poll` read, for the log (a subclass's poll sets it).
        self.remote_state: str | None = None
        self._hook: NairiAsyncHook | None = None  # while :meth:`run` waits

    def identity(self) -> dict[str, Any]:
        """The JSON kwargs that say what this trigger waits for (:meth:`serialize` stores them): here
        ``resource_id``; a subclass waiting for something else returns its own ``__init__`` parameters."""
        return {"resource_id": self.resource_id}

    def extra_kwargs(self) -> dict[str, Any]:
        """JSON kwargs a subclass adds to :meth:`serialize` (its own ``__init__`` parameters)."""
        return {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                **self.identity(),
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "max_transient_errors": self.max_transient_errors,
                **self.extra_kwargs(),
            },
        )

    async def poll(self, hook: NairiAsyncHook) -> dict[str, Any] | None:
        """One poll: an event (:func:`~airflow_provider_nairi.outcomes.make_event`) to stop, else ``None``."""
        raise NotImplementedError

    async def cancel(self, hook: NairiAsyncHook) -> bool:
        """Cancel the remote work (called by :meth:`on_kill`); return whether there was work to cancel.
        The default has none."""
        return False

    def make_hook(self) -> NairiAsyncHook:
        """The async hook for ``conn_id``; imported here so that parsing a DAG never loads aiohttp."""
        from airflow_provider_nairi.hooks.nairi import NairiAsyncHook  # noqa: PLC0415

        return NairiAsyncHook(self.conn_id)

    def seconds_left(self) -> float | None:
        """Seconds until the deadline (negative once passed), ``None`` without a deadline."""
        return seconds_left(self.deadline)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """The wait (:meth:`~airflow_provider_nairi.resources.waiting.Waiter.wait_async` over :meth:`poll`),
        then its one event. Lean on purpose, as a triggerer holds thousands of waiting triggers: one
        generator, no closures (the waiter gets bound methods and a partial), the hook's client closed before
        the event."""
        self._hook = self.make_hook()
        try:
            event = await Waiter(
                self.kind,
                self.resource_id,
                deadline=self.deadline,
                poll_interval=self.poll_interval,
                max_transient_errors=self.max_transient_errors,
                log=self._wait_log(),
                state=self._state,
                last_answer=self._last_answer,
            ).wait_async(functools.partial(self.poll, self._hook))
        finally:
            hook, self._hook = self._hook, None
            await hook.close()
        yield _event(event)

    def _wait_log(self) -> Any:
        """The logger of one wait: :attr:`log` resolved once. On Airflow 3 it is a structlog proxy that looks
        its logger up again on every line, a poll's DEBUG line included; where a line goes is still decided
        when it is written (Airflow binds the trigger's context to the running task, not to the logger)."""
        bind = getattr(self.log, "bind", None)  # structlog's; a stdlib logger (Airflow 2) has none
        return self.log if bind is None else bind()

    def _state(self) -> str | None:
        return self.remote_state

    def _last_answer(self) -> tuple[str, str, str | None] | None:
        return None if self._hook is None else self._hook.last_answer

    async def task_runs_again(self) -> bool:
        """Whether Airflow will run this trigger's task instance again (it was cleared or is up for retry).

        Asked from :meth:`on_kill`: the triggerer kills the trigger of a cleared task as it kills that of a
        task marked failed, and only the task instance's state tells them apart. ``False`` when the trigger
        has no task instance (not run by a triggerer), when the task instance is gone, or when Airflow cannot
        be asked (logged): then the work is cancelled, so that no agent keeps working for nobody.
        """
        ti = self.task_instance
        if ti is None:
            return False
        try:
            from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance  # noqa: PLC0415

            states = await asyncio.wait_for(
                asyncio.to_thread(
                    RuntimeTaskInstance.get_task_states,
                    dag_id=ti.dag_id,
                    map_index=ti.map_index,
                    task_ids=[ti.task_id],
                    run_ids=[ti.run_id],
                ),
                timeout=self.CANCEL_TIMEOUT / 3,
            )
        except Exception as error:
            self.log.warning("Could not read the state of task %s: %s", ti.task_id, error)
            return False
        key = ti.task_id if ti.map_index is None or ti.map_index < 0 else f"{ti.task_id}_{ti.map_index}"
        run_states = states.get(ti.run_id) or {}
        return key in run_states and run_states[key] in STATES_THAT_RUN_AGAIN

    async def on_kill(self) -> None:
        """Cancel the remote work when a user kills the deferred task (Airflow 3.3+), unless the task runs
        again (cleared): its next try reattaches to that work. Log any error."""
        if await self.task_runs_again():
            self.log.info(
                "Left %s %s running: the task was cleared and its next try takes it over",
                self.kind,
                self.resource_id,
            )
            return
        hook = self.make_hook()
        try:
            if await asyncio.wait_for(self.cancel(hook), timeout=self.CANCEL_TIMEOUT):
                self.log.info("Cancelled %s %s", self.kind, self.resource_id)
            else:
                self.log.info(
                    "Left %s %s running: this task has nothing to cancel", self.kind, self.resource_id
                )
        except Exception as error:
            self.log.warning("Could not cancel %s %s on kill: %s", self.kind, self.resource_id, error)
        finally:
            await hook.close()
