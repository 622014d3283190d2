"""Helpers shared by the emulator's tests (a unique module name: test directories have no packages)."""

from __future__ import annotations

import time

import httpx

ENDED = ("completed", "failed", "cancelled")


def client_for(emulator, key: str) -> httpx.Client:
    """An httpx client on ``emulator`` that sends ``key`` as ``X-API-Key``."""
    return httpx.Client(base_url=emulator.base_url, headers={"X-API-Key": key}, timeout=10)


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    """Assert a contract error envelope with ``status`` and ``code``; return its ``error``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    assert body["meta"]["request_id"] == response.headers["X-Request-Id"]
    return body["error"]


def wait_until_received(emulator, idempotency_key: str | None = None, path: str | None = None, timeout=5.0):
    """Block until the emulator's request log shows a request still in flight (status None) matching."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for entry in emulator.admin.requests_log():
            wanted = (idempotency_key is None or entry["idempotency_key"] == idempotency_key) and (
                path is None or entry["path"] == path
            )
            if wanted and entry["status"] is None:
                return entry
        time.sleep(0.01)
    raise AssertionError("the request never reached the emulator")


def wait_for(api, path: str, statuses=ENDED, timeout: float = 5.0) -> dict:
    """GET ``path`` until ``data.status`` is one of ``statuses``; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = api.get(path).json()["data"]
        if data["status"] in statuses:
            return data
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {statuses}")
