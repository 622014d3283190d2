"""Fixtures of the emulator's own tests: an HTTP client on the session emulator, and private emulators."""

from __future__ import annotations

import httpx
import pytest


@pytest.fixture
def api(emulator):
    """An httpx client on the session emulator, authenticated with its read-write key."""
    with httpx.Client(
        base_url=emulator.base_url, headers={"X-API-Key": emulator.api_key}, timeout=10
    ) as client:
        yield client
    emulator.admin.clear_faults()


@pytest.fixture
def agent(api):
    """A fresh agent with plain instructions."""
    return api.post("/agents", json={"name": "helper", "instructions": "Answer briefly."}).json()["data"]
