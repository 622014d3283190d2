"""One rate budget per API key, shared by the key's clients: every trigger of an event loop, every thread of a
process.

Every answer says how many requests the key has left in its window and when the window resets
(``X-RateLimit-Remaining``, ``X-RateLimit-Reset``); a 429 says how long to stay away (``Retry-After``). A
:class:`RateBudget` turns that into one schedule for all the clients of the key:

- **Pace.** Requests go out one slot apart, in the order clients ask, the spacing being the time left in the
  window divided by the requests left in it (as of the latest answer). A thousand waits on one key therefore
  poll at the key's rate, each a little later, instead of all at once and mostly refused.
- **Pause together.** After a 429 nobody sends before its ``Retry-After`` (1 s without one), and when an
  answer says nothing is left, nobody sends before the reset; the whole schedule moves back by the pause, so
  the clients keep their order and do not burst when it ends.
- **Probe first.** Until an answer has said anything about the key, one request goes alone and the others wait
  for it. An answer without rate-limit headers turns pacing off (pauses after a 429 still apply).

Other processes on the same key (mapped tasks on workers, a second triggerer) each keep their own budget, but
the headers count everyone's requests: as the window empties every budget's spacing grows, so together they
slow down before the limit rather than after it. The sizing rule is in ``docs/deployment.md``.

A budget is found by base URL and a fingerprint of the key (the first 12 hex digits of its sha256); neither
the key nor the fingerprint is logged, and ``repr`` shows neither. Pure: no Airflow, no HTTP library, no clock
of its own (callers pass ``now``, Unix seconds, because ``X-RateLimit-Reset`` is Unix time).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass

from airflow_provider_nairi.client.protocol import RateLimit
from airflow_provider_nairi.exceptions import NairiRateLimitError

#: Seconds every client of a key waits after a 429 that gave no ``Retry-After``.
DEFAULT_PAUSE = 1.0


def key_fingerprint(api_key: str) -> str:
    """A short, one-way name for a key (12 hex digits of its sha256): tells keys apart, is no key itself."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Ticket:
    """A client's turn: send at ``slot`` (Unix seconds), later by any pause recorded since it was taken (the
    budget's ``shift`` minus the ticket's)."""

    slot: float
    shift: float


class RateBudget:
    """The shared schedule of one key (see the module docstring). Thread-safe; every method is O(1)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: Seconds between two slots: None until an answer spoke, 0 when the server sends no rate limit.
        self.spacing: float | None = None
        self.next_slot = 0.0
        self.paused_until = 0.0
        #: Total seconds the schedule has moved back by pauses (lets a waiting client see a pause).
        self.shift = 0.0
        self.probing = False

    def __repr__(self) -> str:
        return f"RateBudget(spacing={self.spacing}, paused_until={self.paused_until:.3f})"

    def reserve(self, now: float) -> Ticket | None:
        """Take the next slot (at ``now`` at the earliest). None: the key is unknown and another request is
        probing it; wait for an answer to be recorded and ask again."""
        with self._lock:
            start = max(now, self.paused_until)
            if self.spacing is None:
                if self.probing:
                    return None
                self.probing = True
                return Ticket(start, self.shift)
            slot = max(start, self.next_slot)
            self.next_slot = slot + self.spacing
            return Ticket(slot, self.shift)

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
        answered: bool = True,
        rate_limited: bool = False,
        retry_after: float | None = None,
    ) -> None:
        """Learn from one try: its answer's rate-limit headers, and whether it was a 429 (``Retry-After`` in
        seconds, or None). ``answered=False``: no answer came (a connection error, a cancelled request); it
        only ends a probe."""
        with self._lock:
            self.probing = False
            if not answered:
                return
            remaining, reset = (
                (None, None) if rate_limit is None else (rate_limit.remaining, rate_limit.reset)
            )
            if remaining and reset is not None and reset > now:
                self.spacing = (reset - now) / remaining
            elif self.spacing is None and remaining != 0:
                self.spacing = 0.0  # the server does not say: no pacing
            if remaining == 0 and reset is not None:
                self._pause_until(now, reset)
            if rate_limited:
                self._pause_until(now, now + (DEFAULT_PAUSE if retry_after is None else retry_after))

    def _pause_until(self, now: float, until: float) -> None:
        """Nobody sends before ``until``; pending slots move back by the time added to the pause."""
        added = until - max(now, self.paused_until)
        if added <= 0:
            return
        self.paused_until = until
        self.shift += added
        self.next_slot += added


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
