"""One rate budget per API key, shared by the key's clients: every trigger of an event loop, every thread of a
process.

Every answer says how many requests the key has left in its window and when the window resets
(``X-RateLimit-Remaining``, ``X-RateLimit-Reset``); a 429 says how long to stay away (``Retry-After``). A
:class:`RateBudget` turns that into one schedule for all the clients of the key:

- **Pace.** Requests go out one slot apart, in the order clients ask, the spacing being the time left in the
  window divided by the requests left in it (as of the latest answer). A thousand waits on one key therefore
  poll at the key's rate, each a little later, instead of all at once and mostly refused.
- **Pause together.** After a 429 nobody sends before its ``Retry-After`` (without one, only the client that
  got it backs off, as a retry does), and when an
  answer says nothing is left, nobody sends before the reset; the whole schedule moves back by the pause, so
  the clients keep their order and do not burst when it ends.
- **Cheap when nothing changes.** :meth:`RateBudget.record_answer` recognises an answer of the window it
  recorded last (same ``X-RateLimit-Reset`` and ``X-RateLimit-Limit``) that cannot change the schedule and
  takes it without the lock: in a window the budget opened (its first answer said ``limit - 1`` left) it
  paces at the window's steady pace, so any answer with requests left; in a window someone else opened,
  an answer with more than half the limit left (the pace of the latest recorded answer holds until then,
  never faster than spreading what was left then over what was left of the window). Most polls of a
  triggerer on a key with headroom.
- **Bursts within the margin.** A request may go ahead of its place by :data:`PACE_MARGIN` of the pace: in a
  window the budget opened, what keeps every window of that length under the limit (:func:`lead_for`); in a
  window someone else opened, 2 % of the time left in it, so at most 2 % of the requests left go early. A
  triggerer's polls that fall due together go together instead of each behind a timer of its own.
- **Probe first.** Until an answer has said anything about the key, only :data:`FIRST_REQUESTS` go and the
  others wait for an answer (at most :data:`PROBE_PATIENCE`: a hung host holds nobody). An answer without
  rate-limit headers turns pacing off (pauses after a 429 still apply).

Other processes on the same key (mapped tasks on workers, a second triggerer) each keep their own budget, but
the headers count everyone's requests: as the window empties every budget's spacing grows, so together they
slow down before the limit rather than after it. The sizing rule is in ``docs/deployment.md``.

A budget is found by base URL and a fingerprint of the key (the first 12 hex digits of its sha256); neither
the key nor the fingerprint is logged, and ``repr`` shows neither. Pure: no Airflow, no HTTP library, no clock
of its own (callers pass ``now``, Unix seconds, because ``X-RateLimit-Reset`` is Unix time).
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

from airflow_provider_nairi.client.config import ClientConfig
from airflow_provider_nairi.client.protocol import RateLimit, header_number, parse_retry_after
from airflow_provider_nairi.exceptions import NairiRateLimitError

#: How much slower than the limit a budget paces in a window it opened (arrival jitter must not overrun it).
PACE_MARGIN = 0.02
#: Requests that may go before any answer has spoken about the key (the probe and a few beside it), and the
#: seconds the others wait for an answer: a first answer that takes longer (a hung host) holds nobody.
FIRST_REQUESTS = 10
PROBE_PATIENCE = 0.2
#: A client due sooner than this goes at once: a timer per request costs more than the pace gains (a key
#: allowing 100,000 requests a minute would otherwise put a sub-millisecond sleep before every poll).
SHORTEST_WAIT = 0.005


def key_fingerprint(api_key: str) -> str:
    """A short, one-way name for a key (12 hex digits of its sha256): tells keys apart, is no key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Ticket:
    """A client's place in the key's queue (``None`` number: the probe, due at once after any pause)."""

    number: int | None


class RateBudget:
    """The shared schedule of one key (see the module docstring). Thread-safe; every method is O(1).

    Clients take numbered tickets; ticket ``n`` is due at ``anchor_time + (n - anchor) * spacing``. When the
    spacing changes or a pause starts, the anchor moves so that the tickets already handed out follow the new
    pace at once (a thousand waiting triggers do not keep the pace of the moment they queued)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Seconds between two requests: None until an answer spoke, 0 when the server sends no rate limit.
        self.spacing: float | None = None
        self.paused_until = 0.0
        self.probing = False
        self.probe_started = 0.0
        self.probes = 0
        self.next_ticket = 0
        self.anchor, self.anchor_time = 0, 0.0
        #: The shortest window seen (seconds), and (reset, when it opened) of the latest window we opened.
        self.window: float | None = None
        self.window_opened = (0.0, 0.0)
        #: Seconds a request may go ahead of its place: :func:`lead_for` in a window this budget opened,
        #: :data:`PACE_MARGIN` of the time left in a window someone else opened.
        self.lead = 0.0
        #: ``(X-RateLimit-Reset text, X-RateLimit-Limit text, rate limit, floor)`` of the latest answer
        #: recorded, when a later answer of its window with more than ``floor`` requests left changes nothing
        #: (:meth:`record_answer`); else None.
        self._quiet: tuple[str, str, RateLimit, float] | None = None

    def __repr__(self) -> str:
        return f"RateBudget(spacing={self.spacing}, paused_until={self.paused_until:.3f})"

    def reserve(self, now: float) -> Ticket | None:
        """Take the next place in the queue. None: the key is unknown and another request is probing it;
        wait for an answer to be recorded and ask again."""
        with self._lock:
            if self.spacing is None:
                if not self.probing:
                    self.probing, self.probe_started, self.probes = True, now, 0
                if self.probes >= FIRST_REQUESTS and now < self.probe_started + PROBE_PATIENCE:
                    return None
                self.probes += 1
                return Ticket(None)
            number = self.next_ticket
            self.next_ticket += 1
            start = max(now, self.paused_until)
            if self._due(number) < start:  # nobody queued ahead: this one goes when it may
                self.anchor, self.anchor_time = number, start
            return Ticket(number)

    def go_now(self, now: float) -> bool:
        """Take the next place when it is due at once (the key's pace known, no pause, nobody queued more
        than :data:`SHORTEST_WAIT` ahead) and return True; else take nothing and return False (then
        :meth:`reserve`). The path of every request on a key with headroom: one lock, no ticket."""
        with self._lock:
            if self.spacing is None or now < self.paused_until:
                return False
            number = self.next_ticket
            due = self.anchor_time + (number - self.anchor) * self.spacing  # _due, inline (every request)
            if due - now > max(SHORTEST_WAIT, self.lead):
                return False
            self.next_ticket += 1
            if due < now:  # as reserve: nobody queued ahead, this one goes now
                self.anchor, self.anchor_time = number, now
            return True

    def probe_wait(self, now: float) -> float:
        """How long a client refused by :meth:`reserve` may still wait for the probe's answer."""
        return max(0.0, self.probe_started + PROBE_PATIENCE - now)

    def due(self, ticket: Ticket) -> float:
        """When ``ticket`` may be sent (Unix seconds); ask again after waiting, a pause may have moved it."""
        with self._lock:
            if ticket.number is None:
                return self.paused_until
            return max(self.paused_until, self._due(ticket.number))

    def _due(self, number: int) -> float:
        return self.anchor_time + (number - self.anchor) * (self.spacing or 0.0)

    def _set_spacing(self, now: float, spacing: float) -> None:
        """Change the pace from now on: the first ticket not yet due keeps its time, the next follow."""
        if self.spacing:
            ahead = max(0, math.ceil((now - self.anchor_time) / self.spacing))
            self.anchor, self.anchor_time = self.anchor + ahead, self.anchor_time + ahead * self.spacing
        self.spacing = spacing

    def check_pause(self, now: float, longest: float) -> None:
        """Raise :class:`~airflow_provider_nairi.exceptions.NairiRateLimitError` when the key is paused for
        longer than ``longest`` seconds (a client's ``retry_max_wait``) instead of waiting that long."""
        left = self.paused_until - now
        if left > longest:
            raise NairiRateLimitError(
                f"The key's rate limit pauses its requests for {left:.0f} s, longer than retry_max_wait "
                f"({longest:g} s).",
                code="rate_limited",
                retry_after=left,
            )

    def record(
        self,
        now: float,
        rate_limit: RateLimit | None,
        *,
        sent_at: float | None = None,
        answered: bool = True,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Learn from one try sent at ``sent_at``: its answer's rate-limit headers, and whether it was a 429
        (``Retry-After`` in seconds, or None). ``answered=False``: no answer came (a connection error, a
        cancelled request); it only ends a probe."""
        with self._lock:
            self.probing = False
            if not answered:
                return
            remaining, reset = (
                (None, None) if rate_limit is None else (rate_limit.remaining, rate_limit.reset)
            )
            if reset is not None and rate_limit is not None:
                reset = self._window_end(rate_limit, reset, sent_at)
            if remaining and reset is not None and reset > now:
                first = self.spacing is None
                own_pace = self._own_pace(rate_limit)
                self.lead = lead_for(rate_limit, self.window) if own_pace else PACE_MARGIN * (reset - now)
                self._set_spacing(now, own_pace or (reset - now) / remaining)
                if first and self.spacing:  # the first requests went unpaced: count them as paced ones
                    self.anchor = self.next_ticket
                    self.anchor_time = max(now, self.probe_started + self.probes * self.spacing)
            elif self.spacing is None and remaining != 0:
                self.spacing = 0.0  # the server does not say: no pacing
            if remaining == 0 and reset is not None:
                self._pause_until(now, reset)
            if rate_limited and retry_after is not None:
                self._pause_until(now, now + retry_after)

    def record_answer(
        self, now: float, status: int, headers: Mapping[str, str], *, sent_at: float, longest: float
    ) -> tuple[RateLimit | None, float | None]:
        """:meth:`record` one answer from its status and headers (``X-RateLimit-*``, a 429's ``Retry-After``).
        Returns the rate limit the answer carried (None without the headers) and, after a 429 whose
        ``Retry-After`` is at most ``longest`` seconds (the client's ``retry_max_wait``: its retry waits the
        pause out), the end of the key's pause; else None."""
        quiet = self.quiet_answer(status, headers)
        if quiet is not None:
            return quiet, None
        return self.record_news(now, status, headers, sent_at=sent_at, longest=longest)

    def record_news(
        self, now: float, status: int, headers: Mapping[str, str], *, sent_at: float, longest: float
    ) -> tuple[RateLimit | None, float | None]:
        """:meth:`record_answer` for an answer :meth:`quiet_answer` did not take (it is not asked again)."""
        limited = status == 429
        reset_text, limit_text = headers.get("X-RateLimit-Reset"), headers.get("X-RateLimit-Limit")
        rate_limit = RateLimit.from_headers(headers)
        retry_after = parse_retry_after(headers.get("Retry-After")) if limited else None
        self.record(now, rate_limit, sent_at=sent_at, rate_limited=limited, retry_after=retry_after)
        with self._lock:
            self._quiet = None
            if (
                rate_limit is not None
                and rate_limit.remaining
                and rate_limit.limit
                and reset_text
                and limit_text
            ):
                # above the floor an answer of this window changes nothing: none in a window paced at its
                # steady pace, half the limit in a window someone else opened
                floor = 0.0 if self._own_pace(rate_limit) is not None else rate_limit.limit / 2
                if rate_limit.remaining > floor and self.spacing is not None and now >= self.paused_until:
                    self._quiet = (reset_text, limit_text, rate_limit, floor)
        own_pause = self.paused_until if retry_after is not None and retry_after <= longest else None
        return rate_limit, own_pause

    def quiet_answer(self, status: int, headers: Mapping[str, str]) -> RateLimit | None:
        """The rate limit of an answer of the window recorded last that changes nothing (module docstring),
        read without the lock; None when the answer must be recorded (:meth:`record_answer`)."""
        quiet = self._quiet
        if quiet is None or status == 429:
            return None
        get = headers.get
        if get("X-RateLimit-Reset") != quiet[0] or get("X-RateLimit-Limit") != quiet[1]:
            return None
        remaining = header_number(get("X-RateLimit-Remaining"))
        if remaining is None or remaining <= quiet[3]:
            return None
        known = quiet[2]
        return RateLimit(known.limit, int(remaining), known.reset)

    def _window_end(self, rate_limit: RateLimit, reset: float, sent_at: float | None) -> float:
        """When the answer's window really ends. ``X-RateLimit-Reset`` is often whole seconds, rounded up: a
        1 s window may look 2 s long, which would halve the pace. A request that answers ``limit - 1`` left
        opened its window when it was sent: the window is at most ``reset - sent_at`` long, and at most the
        time since the previous window this budget opened. The shortest of these bounds where the current
        window ends."""
        if sent_at is not None and rate_limit.limit and rate_limit.remaining == rate_limit.limit - 1:
            previous = sent_at - self.window_opened[1] if self.window_opened[1] else math.inf
            length = min(reset - sent_at, previous)
            if length > 0:
                self.window = length if self.window is None else min(self.window, length)
                self.window_opened = (reset, sent_at)
        if self.window is not None and self.window_opened[0] == reset:
            return min(reset, self.window_opened[1] + self.window)
        return reset

    def _own_pace(self, rate_limit: RateLimit | None) -> float | None:
        """In a window this budget opened, the key's steady pace (window length / limit, plus
        :data:`PACE_MARGIN`): spreading what is left over what remains would swing with every answer. None in
        a window someone else opened."""
        if rate_limit is None or not rate_limit.limit or self.window is None:
            return None
        if self.window_opened[0] != rate_limit.reset:
            return None
        return self.window * (1 + PACE_MARGIN) / rate_limit.limit

    def _pause_until(self, now: float, until: float) -> None:
        """Nobody sends before ``until``; the queue moves back by the time added to the pause."""
        added = until - max(now, self.paused_until)
        if added <= 0:
            return
        self.paused_until = until
        self.anchor_time += added


def lead_for(rate_limit: RateLimit | None, window: float | None) -> float:
    """How far ahead of its place a request may go in a window of ``window`` seconds the budget opened,
    where it paces :data:`PACE_MARGIN` under the limit: ``window x (margin - (1 + margin) / limit)``, the
    most that keeps any window of that length at or under the limit (0 when the margin cannot hold a whole
    request: a 20-per-second key is paced slot by slot). A key allowing 100,000 a minute lets a burst of
    polls (a triggerer's loop catching up after a pause) go at once instead of queueing each behind a timer.
    """
    if rate_limit is None or not rate_limit.limit or window is None:
        return 0.0
    return max(0.0, window * (PACE_MARGIN - (1 + PACE_MARGIN) / rate_limit.limit))


class BudgetedClient:
    """What a client keeps of the key's budget between its calls (both clients): the latest answer's rate
    limit and the end of the pause its own 429 caused (its retry waits that out)."""

    config: ClientConfig
    _rate_limit: RateLimit | None
    _waited_until: float

    def _record_in(self, budget: RateBudget, status: int, headers: Mapping[str, str], sent_at: float) -> None:
        """:meth:`RateBudget.record_answer` one answer, and keep what this client needs of it."""
        quiet = budget.quiet_answer(status, headers)  # most answers: nothing to record (no clock, no lock)
        if quiet is not None:
            self._rate_limit = quiet
            return
        rate_limit, own_pause = budget.record_news(
            time.time(), status, headers, sent_at=sent_at, longest=self.config.retry_max_wait
        )
        self._rate_limit = rate_limit or self._rate_limit
        if own_pause is not None:
            self._waited_until = own_pause  # the retry's wait (Retry-After) covers the pause


class RateBudgets:
    """The budgets of one process (sync clients) or one event loop (async clients), by (base URL, key)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._budgets: dict[tuple[str, str], RateBudget] = {}

    def for_key(self, base_url: str, api_key: str) -> RateBudget:
        """The budget every client of ``api_key`` at ``base_url`` shares (made on first use)."""
        name = (base_url, key_fingerprint(api_key))
        with self._lock:
            budget = self._budgets.get(name)
            if budget is None:
                budget = self._budgets[name] = RateBudget()
            return budget


#: The budgets of this process's sync clients (mapped tasks on a worker run one process each; threads share).
PROCESS_BUDGETS = RateBudgets()
