"""One emulator's live parts: settings, state, keys, rate limits, faults, the request log, running work."""

from __future__ import annotations

import asyncio
import collections
import math
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from airflow_provider_nairi.emulator.faults import Faults
from airflow_provider_nairi.emulator.protocol import ApiError, not_found
from airflow_provider_nairi.emulator.settings import SCOPES, EmulatorSettings
from airflow_provider_nairi.emulator.state import Record, Store, hash_key, new_id, now

#: Prefixes of the public API keys the contract accepts.
PUBLIC_KEY_PREFIXES = ("nr_", "nv_")
AGENT_KEY_PREFIX = "ccagent_"
#: Most entries the request log keeps (oldest dropped first).
LOG_SIZE = 10_000


@dataclass
class Window:
    """A key's fixed rate-limit window: when it ends (Unix seconds) and how many requests it has used."""

    reset: float
    used: int = 0


class Core:
    """State and machinery shared by the API handlers, the admin API and the agent/video workers."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.store = Store(settings.state_dir)
        self.org = {"id": "org_emulator", "name": settings.org_name}
        self.admin_token = settings.admin_token or secrets.token_urlsafe(24)
        self.faults = Faults()
        self.faults.configure(rate=settings.fault_rate, kinds=settings.fault_kinds, seed=settings.fault_seed)
        self.log: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_SIZE)
        #: API requests received since start (the log keeps only the last :data:`LOG_SIZE`).
        self.requests_total = 0
        #: Of those, the ones answered 429 because their key was over its rate limit (faults not counted).
        self.requests_rate_limited = 0
        self.windows: dict[str, Window] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        #: Idempotency records being produced right now (a concurrent duplicate gets 409 ``conflict``).
        self.idempotency_in_flight: set[str] = set()
        seeded = [
            self.add_key(key, scopes, name=f"seeded-{n}") for n, (key, scopes) in enumerate(settings.keys, 1)
        ]
        self.api_key = seeded[0] if seeded else self.create_key(("read", "write"), name="default")

    # Keys -----------------------------------------------------------------------------------------------
    def add_key(self, key: str, scopes: Iterable[str], *, name: str) -> str:
        scopes = sorted(set(scopes))
        if set(scopes) - set(SCOPES):
            raise ValueError(f"scopes must be among {SCOPES}")
        hint = f"{key[:3]}...{key[-4:]}" if len(key) > 8 else "..."
        self.store.put(
            "keys", hash_key(key), {"name": name, "hint": hint, "scopes": scopes, "revoked": False}
        )
        return key

    def create_key(
        self, scopes: Sequence[str] = ("read", "write"), *, prefix: str = "nr_", name: str = ""
    ) -> str:
        key = prefix + secrets.token_urlsafe(24)
        return self.add_key(key, scopes, name=name or f"key-{len(self.store.tables['keys']) + 1}")

    def revoke_key(self, key: str) -> bool:
        record = self.store.get("keys", hash_key(key))
        if record is None:
            return False
        self.store.put("keys", hash_key(key), {**record, "revoked": True})
        return True

    def authenticate(self, headers: Any) -> Record:
        """The key record of a request, or 401. Called again before answering, so revocation is immediate."""
        key = presented_key(headers)
        if not key:
            raise ApiError(401, "unauthorized", "Send your API key as X-API-Key or Authorization: Bearer.")
        if key.startswith(AGENT_KEY_PREFIX):
            raise ApiError(
                401,
                "agent_key_not_allowed",
                "Agent keys (ccagent_...) authenticate nairid daemons and are not accepted by this API. "
                "Create a public API key under Settings -> API Key.",
            )
        record = self.store.get("keys", hash_key(key)) if key.startswith(PUBLIC_KEY_PREFIXES) else None
        if record is None or record["revoked"]:
            raise ApiError(401, "unauthorized", "The API key is invalid or revoked.")
        return record

    # Rate limits ----------------------------------------------------------------------------------------
    def hit_rate_limit(self, headers: Any) -> tuple[dict[str, str], bool]:
        """Count one request against its key's window: the three headers, and whether it is allowed."""
        bucket = hash_key(presented_key(headers) or "anonymous")
        clock = time.time()
        window = self.windows.get(bucket)
        if window is None or clock >= window.reset:
            window = self.windows[bucket] = Window(reset=clock + self.settings.rate_window)
        window.used += 1
        limit = self.settings.rate_limit
        allowed = window.used <= limit
        out = {
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": str(max(0, limit - window.used)),
            "X-RateLimit-Reset": str(math.ceil(window.reset)),
        }
        if not allowed:
            out["Retry-After"] = str(max(1, math.ceil(window.reset - clock)))
        return out, allowed

    # Work in the background -----------------------------------------------------------------------------
    def start(self, key: str, work: Any) -> None:
        """Run coroutine ``work`` in the background under ``key`` (a conversation or video id)."""
        previous = self.tasks.pop(key, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.get_running_loop().create_task(work)
        self.tasks[key] = task
        task.add_done_callback(
            lambda done: self.tasks.pop(key, None) if self.tasks.get(key) is done else None
        )

    def stop(self, key: str) -> None:
        task = self.tasks.pop(key, None)
        if task is not None:
            task.cancel()

    def counts(self) -> dict[str, int]:
        counts = self.store.counts()
        counts.pop("idempotency")
        counts["requests_logged"] = len(self.log)
        counts["requests_total"] = self.requests_total
        counts["requests_rate_limited"] = self.requests_rate_limited
        return counts

    def new_record(
        self, table: str, prefix: str, fields: dict[str, Any], *, stamp_update: bool = True
    ) -> Record:
        """Create and store a record with a fresh id and ``created_at`` (and ``updated_at``)."""
        stamp = now()
        record = {"id": new_id(prefix), **fields, "created_at": stamp}
        if stamp_update:
            record["updated_at"] = stamp
        return self.store.put(table, record["id"], record)

    def update_record(self, table: str, record: Record, changes: dict[str, Any]) -> Record:
        return self.store.put(table, record["id"], {**record, **changes, "updated_at": now()})

    def find(self, table: str, record_id: str, what: str, field_name: str | None = None) -> Record:
        record = self.store.get(table, record_id)
        if record is None:
            raise not_found(what, field_name)
        return record


def presented_key(headers: Any) -> str | None:
    """The key a request carries: ``X-API-Key``, else ``Authorization: Bearer``."""
    key = headers.get("x-api-key")
    if key:
        return str(key).strip()
    auth = headers.get("authorization") or ""
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None
