"""Settings of one emulator instance: latencies, limits, keys, faults, persistence."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

#: Scopes a key can carry (see the contract): ``read`` covers every GET and the read-only POSTs.
SCOPES = ("read", "write")

#: The fault kinds the emulator can inject (see docs/emulator.md).
FAULT_KINDS = ("429", "500", "502", "503", "reset", "slow", "redirect", "lost")


@dataclasses.dataclass
class EmulatorSettings:
    """What an emulator does; every field can be given to ``run_emulator(**fields)`` and most to the CLI.

    Latencies are in seconds. The defaults suit tests: agents answer in 50 ms, videos are ready in 100 ms, the
    rate limit is far above what a test sends, and nothing is persisted.
    """

    #: Seconds an agent takes for one turn (``queued`` for the first fifth of it, then ``running``).
    turn_latency: float = 0.05
    #: Seconds a video stays ``processing``.
    video_delay: float = 0.1
    #: Largest upload accepted, in bytes (the contract's 5 GiB by default); larger gets 413.
    upload_limit: int = 5 * 1024**3
    #: Requests per key per window; the 429 answer carries ``Retry-After`` (seconds to the window's end).
    rate_limit: int = 100_000
    #: Length of the rate-limit window, in seconds.
    rate_window: float = 60.0
    #: Keys seeded at start: ``(key, scopes)`` pairs. Empty: one read-write ``nr_`` key is made.
    keys: Sequence[tuple[str, Sequence[str]]] = ()
    #: Token of the admin API (header ``X-Admin-Token``); made at random when empty.
    admin_token: str = ""
    #: Directory that keeps state (SQLite and files) across restarts; ``None`` keeps everything in memory.
    state_dir: Path | str | None = None
    #: Start-up faults: the share of API requests answered with a fault (0 to 1) and the kinds to draw from.
    fault_rate: float = 0.0
    fault_kinds: Sequence[str] = FAULT_KINDS
    #: Seed of the fault draw, for reproducible runs.
    fault_seed: int | None = None
    #: Seconds a ``slow`` fault delays its (otherwise normal) answer.
    slow_seconds: float = 0.5
    #: ``Retry-After`` of an injected 429, in seconds.
    fault_retry_after: int = 0
    #: Host name the ``redirect`` fault points at (the same server under another name).
    redirect_host: str = "localhost"
    #: Name of the single org every key belongs to.
    org_name: str = "Emulated org"

    def __post_init__(self) -> None:
        for name in ("turn_latency", "video_delay", "rate_window", "slow_seconds"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.upload_limit < 0 or self.rate_limit < 1:
            raise ValueError("upload_limit must be >= 0 and rate_limit >= 1")
        if not 0 <= self.fault_rate <= 1:
            raise ValueError("fault_rate must be between 0 and 1")
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
        for key, scopes in self.keys:
            if set(scopes) - set(SCOPES):
                raise ValueError(f"scopes of a key must be among {SCOPES}")
            if not key:
                raise ValueError("a seeded key cannot be empty")
