"""The time limits of the async client's tries, kept by one timer per event loop instead of timers per try.

Each try of :class:`~airflow_provider_nairi.client.aio.AsyncNairiClient` has two limits: ``request_timeout``
for the whole try (the wait for a pooled connection, connecting, sending, the answer's last byte) and
``read_timeout`` without a byte of the answer (measured from the start of the try until its headers arrive,
then from each chunk of its body). aiohttp would keep them with a timer for the try and a timer re-armed at
each read: three timers per poll in a triggerer polling thousands of waits, each one an object in the event
loop's heap. A :class:`TryWatchdog` keeps every in-flight try of its loop in a set and one timer armed at the
earliest limit among them; a try that reaches one is cancelled, and the client turns that cancellation into
the same retryable error aiohttp's timers gave (:meth:`TryWatchdog.expired`). A try in progress costs a set
entry and, per chunk of its answer, one clock reading; the loop's timer fires about once per ``read_timeout``.

Pure asyncio: no Airflow, no HTTP library.
"""

from __future__ import annotations

import asyncio
import math
from typing import Literal

#: Which limit a try reached: the whole try's (``request_timeout``) or the wait for its next bytes.
Limit = Literal["request_timeout", "read_timeout"]


#: Whether tasks count their pending cancellations (``Task.cancelling``, Python 3.11+).
_COUNTS_CANCELLATIONS = hasattr(asyncio.Task, "cancelling")


class Watch:
    """One try under watch: its task, its two limits (event-loop time) and, once cancelled, which one."""

    __slots__ = ("cancelling", "expired", "read_by", "read_timeout", "task", "total_by")

    def __init__(self, task: asyncio.Task[object], now: float, read_timeout: float, total: float) -> None:
        self.task = task
        self.read_timeout = read_timeout
        self.read_by = now + read_timeout
        self.total_by = now + total
        #: The task's pending cancellations when the try began (Python 3.11+; 0 before): another one arriving
        #: during the try is not the watchdog's and is never taken back.
        self.cancelling = task.cancelling() if _COUNTS_CANCELLATIONS else 0
        self.expired: Limit | None = None


class TryWatchdog:
    """The in-flight tries of one event loop and the one timer that enforces their limits."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._watches: set[Watch] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def start(self, read_timeout: float, total: float) -> Watch:
        """Watch the current task's try from now on; call :meth:`stop` when it ends, whatever the outcome."""
        task = asyncio.current_task(self._loop)
        if task is None:  # pragma: no cover (the client only runs inside a task)
            raise RuntimeError("a Nairi async call must run inside an asyncio task")
        watch = Watch(task, self._loop.time(), read_timeout, total)
        self._watches.add(watch)
        due = min(watch.read_by, watch.total_by)
        if due < self._timer_at:
            self._arm(due)
        return watch

    def progressed(self, watch: Watch) -> None:
        """Bytes of the answer arrived: its next ones have ``read_timeout`` again (no timer is touched)."""
        watch.read_by = self._loop.time() + watch.read_timeout

    def stop(self, watch: Watch) -> None:
        """The try ended (answer read, error, cancellation): it is no longer watched. The loop's timer stays
        armed for the others (when it fires with nobody due, it re-arms for the earliest or stops)."""
        self._watches.discard(watch)

    def expired(self, watch: Watch) -> Limit | None:
        """Called where the try caught ``CancelledError``: the limit it reached when this watchdog cancelled
        it (the cancellation is then taken back and the caller raises its timeout error instead), or None
        when the cancellation came from elsewhere (a killed trigger): the caller re-raises it."""
        if watch.expired is None:
            return None
        uncancel = getattr(watch.task, "uncancel", None)  # Python 3.11+
        if uncancel is not None and uncancel() > watch.cancelling:
            return None  # cancelled by someone else as well: that cancellation wins
        return watch.expired

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = self._loop.call_at(when, self._expire), when

    def _expire(self) -> None:
        """Cancel every try past one of its limits; re-arm for the earliest limit of the rest."""
        self._timer, self._timer_at = None, math.inf
        now, due = self._loop.time(), math.inf
        for watch in list(self._watches):
            if now >= watch.total_by:
                watch.expired = "request_timeout"
            elif now >= watch.read_by:
                watch.expired = "read_timeout"
            else:
                due = min(due, watch.read_by, watch.total_by)
                continue
            self._watches.discard(watch)
            watch.task.cancel()
        if due < math.inf:
            self._arm(due)
