"""Helpers shared by the client-core tests: the fake host, envelopes as the contract shapes them."""

from __future__ import annotations

from typing import Any

KEY = "nr_live_Sup3rSecretKeyValue"
BASE = "https://api.nairi.test/api/public/v1"


def envelope(data: Any, request_id: str = "req_1", **extra: Any) -> dict[str, Any]:
    """A success envelope as the contract shapes it."""
    return {"success": True, "data": data, "meta": {"request_id": request_id, "duration_ms": 1}, **extra}


def error_body(status: int, code: str, message: str = "nope", details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error, "meta": {"request_id": f"req_{status}"}}


def page(items: list[Any], has_more: bool) -> dict[str, Any]:
    return envelope(items, pagination={"limit": 200, "offset": 0, "total": None, "has_more": has_more})


class Sleeps(list):
    """Records the waits a client asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
