"""The admin API (``/_admin``, header ``X-Admin-Token``) and :class:`AdminClient`, its small client.

Never called by the provider; tests and users drive the emulator with it: faults, keys, the request log,
resource counts and live settings. Answers are ``{"success": true, "data": ...}`` (errors as in the API).

| call | body | data |
|---|---|---|
| ``POST /_admin/faults`` | ``{rate, kinds, seed, sequence, paths}`` | the fault plan |
| ``DELETE /_admin/faults`` | | the (empty) fault plan |
| ``POST /_admin/keys`` | ``{scopes, prefix, name}`` | ``{key}`` |
| ``POST /_admin/keys/revoke`` | ``{key}`` | ``{revoked: bool}`` |
| ``GET /_admin/requests`` · ``DELETE /_admin/requests`` | | the request log (oldest first) · ``{}`` |
| ``GET /_admin/counts`` | | ``{agents: n, conversations: n, ...}`` |
| ``PATCH /_admin/settings`` | any of ``turn_latency, video_delay, upload_limit, rate_limit, rate_window,
  slow_seconds, fault_retry_after`` | the changed settings |
"""

from __future__ import annotations

import dataclasses
import hmac
import json
import urllib.request
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_nairi.emulator.core import Core
from airflow_provider_nairi.emulator.protocol import ApiError, parse_json
from airflow_provider_nairi.emulator.settings import FAULT_KINDS

TOKEN_HEADER = "X-Admin-Token"  # noqa: S105 - a header name, not a secret
LIVE_SETTINGS = (
    "turn_latency",
    "video_delay",
    "upload_limit",
    "rate_limit",
    "rate_window",
    "slow_seconds",
    "fault_retry_after",
)


def _respond(status: int, data: Any) -> Response:
    return Response(json.dumps({"success": True, "data": data}), status, media_type="application/json")


async def handle(core: Core, request: Request, path: str) -> Response:
    """Answer one admin call; every failure is an envelope error."""
    try:
        token = request.headers.get(TOKEN_HEADER.lower(), "")
        if not hmac.compare_digest(token.encode(), core.admin_token.encode()):
            raise ApiError(401, "unauthorized", f"Send the admin token as {TOKEN_HEADER}.")
        body = parse_json(await request.body(), optional=True) if request.method in ("POST", "PATCH") else {}
        if not isinstance(body, dict):
            raise ApiError(422, "validation_error", "The body must be a JSON object.")
        return _respond(200, _dispatch(core, request.method, path, body))
    except ApiError as error:
        return Response(json.dumps(error.body()), error.status, media_type="application/json")
    except (TypeError, ValueError) as error:
        failure = ApiError(422, "validation_error", str(error))
        return Response(json.dumps(failure.body()), 422, media_type="application/json")


def _dispatch(core: Core, method: str, path: str, body: dict[str, Any]) -> Any:
    if path == "/faults" and method == "POST":
        core.faults.configure(**body)
        return core.faults.describe()
    if path == "/faults" and method == "DELETE":
        core.faults.configure()
        return core.faults.describe()
    if path == "/keys" and method == "POST":
        return {"key": core.create_key(**body)}
    if path == "/keys/revoke" and method == "POST":
        return {"revoked": core.revoke_key(str(body["key"]))}
    if path == "/requests" and method == "GET":
        return list(core.log)
    if path == "/requests" and method == "DELETE":
        core.log.clear()
        return {}
    if path == "/counts" and method == "GET":
        return core.counts()
    if path == "/settings" and method == "PATCH":
        unknown = set(body) - set(LIVE_SETTINGS)
        if unknown:
            raise ValueError(f"settings that cannot change at run time: {sorted(unknown)}")
        core.settings = dataclasses.replace(core.settings, **body)
        return {name: getattr(core.settings, name) for name in LIVE_SETTINGS}
    raise ApiError(404, "not_found", f"No admin call {method} {path}.")


class AdminClient:
    """Calls the admin API of a running emulator (standard library only; raises on any error answer)."""

    def __init__(self, admin_url: str, token: str, timeout: float = 10.0) -> None:
        self.admin_url = admin_url.rstrip("/")
        self._token = token
        self.timeout = timeout

    def __repr__(self) -> str:
        return f"AdminClient({self.admin_url!r})"

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - the URL is the emulator's own loopback address
            self.admin_url + path, data=data, method=method, headers={TOKEN_HEADER: self._token}
        )
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
            return json.loads(answer.read())["data"]

    def set_faults(
        self,
        rate: float = 0.0,
        kinds: Sequence[str] = FAULT_KINDS,
        seed: int | None = None,
        sequence: Sequence[str] | None = None,
        paths: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Replace the fault plan (see :mod:`.faults`); ``sequence=["500", "ok", "429"]`` is exact."""
        body = {"rate": rate, "kinds": list(kinds), "seed": seed, "sequence": sequence, "paths": paths}
        return dict(self._call("POST", "/faults", {k: v for k, v in body.items() if v is not None}))

    def clear_faults(self) -> None:
        self._call("DELETE", "/faults")

    def create_key(self, scopes: Sequence[str] = ("read",), prefix: str = "nr_", name: str = "") -> str:
        """A new key with ``scopes``; ``prefix`` may be ``nr_``, ``nv_`` (or ``ccagent_``, always refused)."""
        return str(
            self._call("POST", "/keys", {"scopes": list(scopes), "prefix": prefix, "name": name})["key"]
        )

    def revoke_key(self, key: str) -> bool:
        """Revoke at once: every later or in-flight request with the key gets 401."""
        return bool(self._call("POST", "/keys/revoke", {"key": key})["revoked"])

    def requests_log(self) -> list[dict[str, Any]]:
        """Requests received so far (oldest first): method, path, query, headers (key redacted),
        idempotency_key, status (an int, ``"reset"`` or ``None`` while in flight), host, request_id, and
        ``at``: when it arrived (epoch seconds, ``time.time()``)."""
        return list(self._call("GET", "/requests"))

    def clear_log(self) -> None:
        self._call("DELETE", "/requests")

    def counts(self) -> dict[str, int]:
        """How many records each table holds: agents, conversations, messages, artifacts, videos..."""
        return dict(self._call("GET", "/counts"))

    def update_settings(self, **settings: Any) -> dict[str, Any]:
        """Change live settings (see :data:`LIVE_SETTINGS`), e.g. ``rate_limit=5``."""
        return dict(self._call("PATCH", "/settings", settings))
