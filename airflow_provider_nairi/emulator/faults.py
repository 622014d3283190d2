"""Fault injection: which API requests get a fault, and what each fault looks like on the wire.

A fault is drawn per API request (never for the admin API or the OpenAPI document), before authentication:
first from the exact ``sequence`` (one item per request, ``"ok"`` lets one through), then at ``rate`` from
``kinds``. ``paths`` (shell patterns relative to ``/api/public/v1``, e.g. ``/conversations/*``) restricts
both. A fault replaces the request entirely (nothing is created), except ``slow``, which delays a normal
answer, and ``lost``, which does the work and then resets the connection instead of answering (an answer lost
on its way back: what idempotency keys are for).
"""

from __future__ import annotations

import collections
import fnmatch
import random
import socket
import struct
from collections.abc import Sequence
from typing import Any

from airflow_provider_nairi.emulator.settings import FAULT_KINDS

#: The HTML page a 502 fault sends, as a proxy in front of the API would.
BAD_GATEWAY_HTML = (
    b"<html><head><title>502 Bad Gateway</title></head>"
    b"<body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>"
)


class Faults:
    """The current fault plan of one emulator."""

    def __init__(self) -> None:
        self.configure()

    def configure(
        self,
        rate: float = 0.0,
        kinds: Sequence[str] = FAULT_KINDS,
        seed: int | None = None,
        sequence: Sequence[str] | None = None,
        paths: Sequence[str] | None = None,
    ) -> None:
        """Replace the plan (see the module docstring); ``ValueError`` on unknown kinds or a bad rate."""
        if not 0 <= float(rate) <= 1:
            raise ValueError("rate must be between 0 and 1")
        unknown = (set(kinds) | set(sequence or ())) - {*FAULT_KINDS, "ok"}
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}, ok")
        if rate and not kinds:
            raise ValueError("a fault rate needs at least one kind")
        self.rate = float(rate)
        self.kinds = list(kinds)
        self.sequence: collections.deque[str] = collections.deque(sequence or ())
        self.paths = list(paths or ())
        self._random = random.Random(seed)

    def describe(self) -> dict[str, Any]:
        return {"rate": self.rate, "kinds": self.kinds, "sequence": list(self.sequence), "paths": self.paths}

    def draw(self, path: str) -> str | None:
        """The fault for a request to ``path``, or ``None`` for a normal answer."""
        if self.paths and not any(fnmatch.fnmatchcase(path, p) for p in self.paths):
            return None
        if self.sequence:
            kind = self.sequence.popleft()
            return None if kind == "ok" else kind
        if self.rate and self._random.random() < self.rate:
            return self._random.choice(self.kinds)
        return None


def reset_connection(send: Any) -> bool:
    """Abort the connection under ``send`` with a TCP RST (uvicorn's transport); ``False`` if not possible."""
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is None:
        return False
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
    return True
