"""The one wait of the provider: poll until remote work ends, on a worker (:meth:`Waiter.wait`) or in the
triggerer (:meth:`Waiter.wait_async`), over the same check and the same decisions.

Every decision is in :meth:`Waiter.after`; the two loops only call the check and sleep:

- **Clock.** Deadlines are epoch seconds (``time.time()``), so a deadline survives a deferral and a triggerer
  restart (monotonic time cannot cross processes). A wall-clock step shifts a wait by that step.
- **Transient errors.** A retryable :class:`~airflow_provider_nairi.exceptions.NairiError` (429, 5xx, network,
  malformed answer) left after the client's own retries is logged and the check tried again after the poll
  interval (after ``Retry-After`` when longer), up to ``max_transient_errors`` in a row; one more, or any
  non-retryable error, ends the wait with an ``error`` event. A check that ends the wait resets the count.
- **Answers the check cannot read.** A field missing or of the wrong type (the check raises one of
  :data:`UNREADABLE`), or a status the contract does not name, is a malformed answer
  (:meth:`Waiter.failure`): a retryable ``NairiServerError`` naming the call and the request id of the latest
  answer, so it counts as a transient error like any other.
- **No busy loop.** Every round sleeps ``poll_interval``, cut short only by the deadline.
- **Logs** (:class:`WaitLog`): at INFO the start, each change of the remote state, a "still waiting" line
  every :data:`STILL_WAITING_EVERY` seconds, retries (WARNING) and, on a worker, the outcome (in the triggerer
  Airflow's own "Trigger fired event" line says it); each poll at DEBUG (the client's line for each read
  too).

Pure: imports no Airflow; the client (for its quiet-poll log level) only when a wait runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from airflow_provider_nairi.exceptions import NairiError, NairiRateLimitError, NairiServerError
from airflow_provider_nairi.resources.events import Event, error_event, timeout_event
from airflow_provider_nairi.validation import check_count, check_seconds

LOG = logging.getLogger("airflow_provider_nairi.waiting")

#: What a check raises on an answer with a field missing or of the wrong type.
UNREADABLE = (AttributeError, KeyError, TypeError, ValueError)
#: ``(method, path, request id)`` of the latest answer a client read (its ``last_answer``).
Answer = tuple[str, str, str | None]

#: Seconds between two INFO "still waiting" lines of one wait (polls in between log at DEBUG only).
STILL_WAITING_EVERY = 300.0

#: The triggerer's waits wake on a grid of the event loop's clock: a sleep ends on the nearest multiple of
#: this many seconds, or of 2 % of the sleep when that is shorter (0: no grid). Waits due within one slot then
#: poll in one pass of the loop, one after the other while their code is still in the CPU's caches, instead of
#: each in a pass of its own between the triggerer's other work (see ``docs/deployment.md``). A poll comes at
#: most half a slot earlier or later than decided, on average on time. Small, because the polls of one slot
#: are in flight together: at 0.1 s, 500 polls a second put 50 in flight at once and the runner collected
#: garbage twice as often.
WAKE_SLOT = 0.02


def on_grid(step: float, now: float) -> float:
    """``step`` seconds from ``now`` (the event loop's clock), moved to end on the nearest point of the wake
    grid (:data:`WAKE_SLOT`)."""
    slot = min(WAKE_SLOT, step * 0.02)
    return step + slot / 2 - (now + step + slot / 2) % slot if slot > 0 else step


def seconds_left(deadline: float | None) -> float | None:
    """Seconds until ``deadline`` (epoch seconds; negative once passed), ``None`` without a deadline."""
    return None if deadline is None else deadline - time.time()


@dataclass(frozen=True)
class WaitOptions:
    """How long and how often to wait; checked once, when the task or trigger is built.

    :param poll_interval: seconds between two checks (positive, finite).
    :param timeout: seconds the wait may take from its start, or ``None`` (no bound of its own).
    :param max_transient_errors: retryable errors tolerated in a row (0 or more).
    """

    poll_interval: float
    timeout: float | None = None
    max_transient_errors: int = 5

    def __post_init__(self) -> None:
        check_seconds("poll_interval", self.poll_interval)
        check_seconds("timeout", self.timeout, optional=True)
        check_count("max_transient_errors", self.max_transient_errors)

    def deadline(self) -> float | None:
        """``timeout`` seconds from now, as epoch seconds, or ``None``."""
        return None if self.timeout is None else time.time() + self.timeout


class WaitLog:
    """What a wait tells a person reading the task or triggerer log.

    INFO: the start (:meth:`started`), every change of the remote state and a "still waiting" line every
    ``every`` seconds (:meth:`polled`), the outcome on a worker (:meth:`ended`). Polls with nothing new:
    DEBUG.

    :param what: what is waited for, e.g. ``"conversation conv_1"``.
    :param every: seconds between two "still waiting" lines (default :data:`STILL_WAITING_EVERY`).
    """

    __slots__ = ("began", "every", "last_line", "log", "state", "what")

    def __init__(self, log: logging.Logger | Any, what: str, every: float | None = None) -> None:
        self.log = log
        self.what = what
        self.every = STILL_WAITING_EVERY if every is None else every
        self.began = time.monotonic()
        self.last_line = self.began
        self.state: str | None = None

    def started(self, where: str, poll_interval: float) -> None:
        self.log.info("Waiting for %s %s (poll every %g s)", self.what, where, poll_interval)

    def polled(self, state: str | None) -> None:
        """Log one poll that did not end the wait; ``state``: the remote state it read (``None``: unknown)."""
        now = time.monotonic()
        if state is not None and state != self.state:
            self.log.info("%s is %s", self.what[0].upper() + self.what[1:], state)
            self.state, self.last_line = state, now
        elif now - self.last_line >= self.every:
            self.log.info(
                "Still waiting for %s (%s) after %.0f min",
                self.what,
                state or "working",
                (now - self.began) / 60,
            )
            self.last_line = now
        else:
            self.log.debug("Polled %s: still %s", self.what, state or "working")

    def ended(self, event: Event, *, said_by_airflow: bool = False) -> None:
        """The outcome, at INFO; at DEBUG when Airflow logs the event itself (``said_by_airflow``: in the
        triggerer its INFO line "Trigger fired event" carries the event's status and message, in the same
        task log, so the outcome is said once and the triggerer writes a line less per wait)."""
        (self.log.debug if said_by_airflow else self.log.info)(
            "Done waiting for %s after %.0f s: %s (%s)",
            self.what,
            time.monotonic() - self.began,
            event.get("status"),
            event.get("message"),
        )


class Waiter:
    """One wait for ``kind`` ``resource_id`` until ``deadline``; see the module docstring for the rules.

    :param state: what the latest check read, for the log (e.g. the remote status); ``None``: unknown.
    :param timeout_message: the ``timeout`` event's message (default: "... had not ended at its deadline").
    :param last_answer: the latest answer the check's client read (``lambda: client.last_answer``), named
        by the error about an answer the check could not read.
    """

    __slots__ = (
        "deadline",
        "errors_in_row",
        "kind",
        "last_answer",
        "log",
        "max_transient_errors",
        "poll_interval",
        "resource_id",
        "state",
        "timeout_message",
        "wait_log",
    )

    def __init__(
        self,
        kind: str,
        resource_id: str,
        *,
        deadline: float | None,
        poll_interval: float,
        max_transient_errors: int = 5,
        log: logging.Logger | Any = LOG,
        state: Callable[[], str | None] = lambda: None,
        timeout_message: str | None = None,
        last_answer: Callable[[], Answer | None] = lambda: None,
    ) -> None:
        self.kind = kind
        self.resource_id = resource_id
        self.deadline = deadline
        self.poll_interval = poll_interval
        self.max_transient_errors = max_transient_errors
        self.log = log
        self.state = state
        self.timeout_message = timeout_message
        self.last_answer = last_answer
        self.errors_in_row = 0
        self.wait_log = WaitLog(log, f"{kind} {resource_id}")

    def after(self, outcome: Event | NairiError | None) -> Event | float:
        """The event that ends the wait, or the seconds to sleep before the next check.

        ``outcome`` is what one check gave: an event (the wait ends), ``None`` (still working) or the error
        it raised.
        """
        delay = self.poll_interval
        if isinstance(outcome, NairiError):
            if not outcome.retryable or self.errors_in_row >= self.max_transient_errors:
                return error_event(self.kind, self.resource_id, outcome)
            self.errors_in_row += 1
            self.log.warning(
                "Polling %s %s failed (%d/%d tolerated in a row): %s",
                self.kind,
                self.resource_id,
                self.errors_in_row,
                self.max_transient_errors,
                outcome,
            )
            if isinstance(outcome, NairiRateLimitError) and outcome.retry_after:
                delay = max(delay, outcome.retry_after)
        else:
            self.errors_in_row = 0
            if outcome is not None:
                return outcome
        self.wait_log.polled(self.state())
        if self.deadline is not None:  # (seconds_left, inline: once per poll)
            left = self.deadline - time.time()
            if left <= 0:
                return timeout_event(self.kind, self.resource_id, self.timeout_message)
            delay = min(delay, left)
        return delay

    def failure(self, error: Exception) -> NairiError:
        """The error a check that raised ``error`` counts as: a client error as it is; an answer the check
        could not read (one of :data:`UNREADABLE`, or a malformed answer the resource layer found without
        knowing the call) a retryable ``NairiServerError`` naming the call and request id of the latest
        answer."""
        if isinstance(error, NairiError) and (error.call is not None or error.code != "malformed_answer"):
            return error
        method, path, request_id = self.last_answer() or (None, None, None)
        if isinstance(error, NairiError):
            message = error.message
        else:
            message = (
                f"the answer about {self.kind} {self.resource_id} could not be read "
                f"({type(error).__name__}: a field is missing or has the wrong type)."
            )
        return NairiServerError(
            message, code="malformed_answer", request_id=request_id, method=method, path=path
        )

    def read(self, check: Callable[[], Event | None]) -> Event | None:
        """``check()`` once, before the wait, on an answer already in hand (a submission's): it is not read
        again, so an answer the check cannot read raises at once, as :meth:`failure` names it."""
        try:
            return check()
        except (NairiError, *UNREADABLE) as error:
            raise self.failure(error) from None

    def wait(
        self, check: Callable[[], Event | None], *, where: str = "on the worker", checked: bool = False
    ) -> Event:
        """Check, sleep (``time.sleep``), check again... until :meth:`after` gives an event; return it.

        :param checked: the caller has already checked once and got ``None`` (start with a sleep).
        """
        from airflow_provider_nairi.client.protocol import polling  # noqa: PLC0415 (not at DAG parse)

        self.wait_log.started(where, self.poll_interval)
        step = self.after(None) if checked else None
        with polling():  # once per wait, not per poll (a context variable set and reset allocates)
            while not isinstance(step, dict):
                if step is not None:
                    time.sleep(step)
                try:
                    outcome = check()
                except (NairiError, *UNREADABLE) as error:
                    step = self.after(self.failure(error))
                else:
                    step = self.after(outcome)
        self.wait_log.ended(step)
        return step

    async def wait_async(
        self, check: Callable[[], Awaitable[Event | None]], *, where: str = "in the triggerer"
    ) -> Event:
        """:meth:`wait` for the triggerer: the same decisions, ``await``-ed checks and ``asyncio.sleep``, each
        sleep ending on the wake grid (:data:`WAKE_SLOT`)."""
        from airflow_provider_nairi.client.protocol import polling  # noqa: PLC0415 (not at DAG parse)

        self.wait_log.started(where, self.poll_interval)
        step: Event | float | None = None
        loop = asyncio.get_running_loop()
        with polling():  # once per wait, not per poll (a context variable set and reset allocates)
            while not isinstance(step, dict):
                if step is not None:
                    await asyncio.sleep(on_grid(step, loop.time()))
                try:
                    outcome = await check()
                except (NairiError, *UNREADABLE) as error:
                    step = self.after(self.failure(error))
                else:
                    step = self.after(outcome)
        self.wait_log.ended(step, said_by_airflow=True)
        return step
