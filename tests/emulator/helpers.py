"""Polling helpers of the emulator tests (bounded in time)."""

from __future__ import annotations

import time

ENDED = ("completed", "failed", "cancelled")


def wait_for(api, path: str, statuses=ENDED, timeout: float = 5.0) -> dict:
    """GET ``path`` until ``data.status`` is one of ``statuses``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = api.get(path).json()["data"]
        if data["status"] in statuses:
            return data
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {statuses}")
