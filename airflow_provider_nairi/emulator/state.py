"""The emulated org's state: tables of JSON-able records, in memory, written through to SQLite when asked.

Every record is a dict. Keys starting with ``_`` are internal (never sent to a client). Tables keep
insertion order, which is the creation order the contract's lists use. With a state directory, every change
is written to ``state.sqlite3`` at once (WAL, one row per record) and uploaded files live in ``files/``; a
new emulator on the same directory loads them back in the same order.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import shutil
import sqlite3
import tempfile
import uuid
from pathlib import Path
from typing import Any

TABLES = (
    "keys",
    "agents",
    "conversations",
    "messages",
    "artifacts",
    "vaults",
    "secrets",
    "env_vars",
    "scheduled_jobs",
    "videos",
    "idempotency",
)

Record = dict[str, Any]


def now() -> str:
    """The current time as RFC 3339 in UTC with milliseconds (``2026-01-02T03:04:05.678Z``)."""
    return (
        datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def new_id(prefix: str) -> str:
    """A fresh id such as ``conv_3f2a...`` (the contract's prefixed strings)."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


def public(record: Record) -> Record:
    """The record without its internal (``_``-prefixed) fields: what a client sees."""
    return {k: v for k, v in record.items() if not k.startswith("_")}


@functools.lru_cache(maxsize=4096)
def hash_key(key: str) -> str:
    """Keys are stored hashed, as the contract says the service does."""
    return hashlib.sha256(key.encode()).hexdigest()


class Store:
    """All tables of the one org, plus the directory that holds uploaded files."""

    def __init__(self, state_dir: Path | str | None = None) -> None:
        self.tables: dict[str, dict[str, Record]] = {name: {} for name in TABLES}
        self._db: sqlite3.Connection | None = None
        if state_dir is None:
            self.files_dir = Path(tempfile.mkdtemp(prefix="nairi-emulator-"))
            self._owns_files = True
            return
        root = Path(state_dir)
        self.files_dir = root / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self._owns_files = False
        self._db = sqlite3.connect(root / "state.sqlite3", isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS records (tbl TEXT NOT NULL, id TEXT NOT NULL, body TEXT NOT NULL,"
            " PRIMARY KEY (tbl, id))"
        )
        for table, record_id, body in self._db.execute("SELECT tbl, id, body FROM records ORDER BY rowid"):
            if table in self.tables:
                self.tables[table][record_id] = json.loads(body)

    def get(self, table: str, record_id: str) -> Record | None:
        return self.tables[table].get(record_id)

    def put(self, table: str, record_id: str, record: Record) -> Record:
        """Insert or replace a record (an update keeps its place in the creation order)."""
        self.tables[table][record_id] = record
        if self._db is not None:
            self._db.execute(
                "INSERT INTO records (tbl, id, body) VALUES (?, ?, ?)"
                " ON CONFLICT (tbl, id) DO UPDATE SET body = excluded.body",
                (table, record_id, json.dumps(record)),
            )
        return record

    def delete(self, table: str, record_id: str) -> Record | None:
        record = self.tables[table].pop(record_id, None)
        if self._db is not None and record is not None:
            self._db.execute("DELETE FROM records WHERE tbl = ? AND id = ?", (table, record_id))
        return record

    def file_path(self, file_id: str) -> Path:
        """Where the bytes of an artifact or video live."""
        return self.files_dir / file_id

    def counts(self) -> dict[str, int]:
        return {name: len(table) for name, table in self.tables.items()}

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._owns_files:
            shutil.rmtree(self.files_dir, ignore_errors=True)
