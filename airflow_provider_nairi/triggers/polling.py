"""A generic async polling trigger: wait in the triggerer, not on a worker, until remote work ends.

:class:`NairiPollingTrigger` is the base of the provider's triggers (conversations, videos). A subclass says
what one poll is (:meth:`~NairiPollingTrigger.poll`: return an event to stop, ``None`` to keep waiting) and
how to cancel the work (:meth:`~NairiPollingTrigger.cancel`); the base does the rest:

- **Serialisation.** Only JSON values: the connection id, the resource id, the absolute deadline (epoch
  seconds, so a trigger restarted on another triggerer keeps the original deadline), the poll interval and the
  number of transient errors tolerated in a row, plus a subclass's :meth:`~NairiPollingTrigger.extra_kwargs`.
  Never the API key (the triggerer reads the connection itself) and never a callable.
- **Transient errors.** A retryable :class:`~airflow_provider_nairi.exceptions.NairiError` (429, 5xx, network,
  malformed answers) left after the client's own retries is logged and the poll tried again after the
  interval (after ``Retry-After`` when longer, at most the client's ``MAX_SERVER_WAIT``), up to
  ``max_transient_errors`` in a row; one more, or any non-retryable error, ends the wait with an ``error``
  event. An answer a subclass's :meth:`~NairiPollingTrigger.poll` cannot read (a field of the wrong type:
  ``AttributeError``, ``KeyError``, ``TypeError``, ``ValueError``) counts as a malformed answer, a
  NairiServerError naming the call and the request id of the latest answer.
- **No busy loop.** Every round sleeps ``poll_interval`` (must be positive), cut short only by the deadline.
- **Events** are JSON dicts from :func:`airflow_provider_nairi.outcomes.make_event`; the task turns them into
  outcomes with :func:`airflow_provider_nairi.outcomes.raise_for_event`.
- **Kill.** On Airflow 3.3+, when a user kills the deferred task (mark failed/success, clear), the triggerer
  calls :meth:`on_kill`, which runs the subclass's cancel (if it has one) within :attr:`CANCEL_TIMEOUT`
  seconds and logs, never raises, its errors. A triggerer restart does not cancel anything.

The async hook (and aiohttp) is imported inside :meth:`run`, never when a DAG file is parsed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_nairi.exceptions import NairiError, NairiRateLimitError, NairiServerError
from airflow_provider_nairi.outcomes import TIMEOUT, error_event, make_event

if TYPE_CHECKING:
    from airflow_provider_nairi.hooks.nairi import NairiAsyncHook


def _event(payload: dict[str, Any]) -> TriggerEvent:
    return TriggerEvent(payload)  # type: ignore[no-untyped-call]


class NairiPollingTrigger(BaseTrigger):
    """Poll a Nairi resource until :meth:`poll` returns an event or the deadline passes.

    :param conn_id: the Nairi connection (read by the triggerer; its key never enters the kwargs).
    :param resource_id: id of the conversation, video... being waited for.
    :param deadline: absolute deadline, epoch seconds (``time.time()``), or ``None`` to wait without one.
        When it passes, a ``timeout`` event is emitted; the work itself is left alone (the task decides).
    :param poll_interval: seconds between two polls; must be positive.
    :param max_transient_errors: retryable errors tolerated in a row before giving up with an ``error`` event.
    """

    #: The resource kind, as in :data:`airflow_provider_nairi.outcomes.TERMINAL_STATES` (set by subclasses).
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
        if not poll_interval > 0:
            raise ValueError(f"poll_interval must be positive, got {poll_interval!r}")
        if max_transient_errors < 0:
            raise ValueError(f"max_transient_errors must be 0 or more, got {max_transient_errors!r}")
        self.conn_id = conn_id
        self.resource_id = resource_id
        self.deadline = deadline
        self.poll_interval = float(poll_interval)
        self.max_transient_errors = int(max_transient_errors)

    def extra_kwargs(self) -> dict[str, Any]:
        """JSON kwargs a subclass adds to :meth:`serialize` (its own ``__init__`` parameters)."""
        return {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "conn_id": self.conn_id,
                "resource_id": self.resource_id,
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
        return None if self.deadline is None else self.deadline - time.time()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        hook = self.make_hook()
        try:
            async for event in self.poll_until_done(hook):
                yield event
        finally:
            await hook.close()

    async def poll_until_done(self, hook: NairiAsyncHook) -> AsyncIterator[TriggerEvent]:
        """The polling loop of :meth:`run` (which closes the hook's client after it)."""
        errors_in_row = 0
        while True:
            delay = self.poll_interval
            try:
                event = await self.read_poll(hook)
            except NairiError as error:
                if not error.retryable or errors_in_row >= self.max_transient_errors:
                    yield _event(error_event(self.kind, self.resource_id, error))
                    return
                errors_in_row += 1
                self.log.warning(
                    "Polling %s %s failed (%d/%d tolerated in a row): %s",
                    self.kind,
                    self.resource_id,
                    errors_in_row,
                    self.max_transient_errors,
                    error,
                )
                if isinstance(error, NairiRateLimitError) and error.retry_after:
                    delay = max(delay, error.retry_after)
                event = None
            else:
                errors_in_row = 0
            if event is not None:
                yield _event(event)
                return
            left = self.seconds_left()
            if left is not None:
                if left <= 0:
                    yield _event(
                        make_event(
                            TIMEOUT,
                            kind=self.kind,
                            resource_id=self.resource_id,
                            message=f"{self.kind} {self.resource_id} had not ended at its deadline",
                        )
                    )
                    return
                delay = min(delay, left)
            await asyncio.sleep(delay)

    async def read_poll(self, hook: NairiAsyncHook) -> dict[str, Any] | None:
        """:meth:`poll`, with an answer it cannot read turned into a malformed-answer NairiServerError."""
        try:
            return await self.poll(hook)
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            method, path, request_id = hook.last_answer or (None, None, None)
            raise NairiServerError(
                f"the answer about {self.kind} {self.resource_id} could not be read ({type(exc).__name__}: "
                "a field is missing or has the wrong type).",
                code="malformed_answer",
                request_id=request_id,
                method=method,
                path=path,
            ) from None

    async def on_kill(self) -> None:
        """Cancel the remote work when a user kills the deferred task (Airflow 3.3+); log any error."""
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
