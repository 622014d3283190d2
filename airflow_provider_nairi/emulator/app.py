"""The ASGI application: one dispatcher in front of every API handler, and the admin API beside it.

For each API request, in this order: the request is logged; a fault may replace it (see :mod:`.faults`); the
key is authenticated (401), counted against its rate limit (429) and checked for the route's scope (403); the
body is decoded and validated (400/422); an ``Idempotency-Key`` may replay an earlier answer; the handler
runs; the key is checked once more (a key revoked while the request was in flight gets 401); the answer
goes out in the envelope with ``X-Request-Id`` and the rate-limit headers. Any unexpected exception
becomes a 500 ``internal_error`` envelope, never a stack trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
import urllib.parse
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_nairi.emulator import admin, openapi, resources, routing
from airflow_provider_nairi.emulator.core import Core
from airflow_provider_nairi.emulator.faults import BAD_GATEWAY_HTML, reset_connection
from airflow_provider_nairi.emulator.protocol import ApiError, Reply, parse_json, read_json_body, validate

API_PREFIX = "/api/public/v1"
ADMIN_PREFIX = "/_admin"
REDACTED = "<redacted>"
MAX_IDEMPOTENCY_KEY = 255

log = logging.getLogger(__name__)


class Answer:
    """A complete answer sent as two ASGI messages (measured: a third of the cost of a Starlette Response)."""

    def __init__(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.status_code = status
        self.body = body
        self.headers = headers or {}
        self.media_type = media_type

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        raw = [
            (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers.items()
        ]
        if self.status_code != 204:
            raw.append((b"content-length", str(len(self.body)).encode()))
        if self.media_type:
            raw.append((b"content-type", self.media_type.encode()))
        await send({"type": "http.response.start", "status": self.status_code, "headers": raw})
        await send({"type": "http.response.body", "body": self.body})


def json_response(status: int, body: dict[str, Any], headers: dict[str, str]) -> Answer:
    return Answer(status, json.dumps(body, separators=(",", ":")).encode(), headers, "application/json")


def new_request_id() -> str:
    return "req_" + os.urandom(10).hex()


def redacted_headers(headers: dict[str, str]) -> dict[str, str]:
    """Request headers as logged: the API key replaced by ``<redacted>`` (its presence stays visible)."""
    out = {}
    for name, value in headers.items():
        if name == "x-api-key":
            out[name] = REDACTED
        elif name == "authorization":
            out[name] = f"{value.partition(' ')[0]} {REDACTED}"
        else:
            out[name] = value
    return out


class NairiApp:
    """The emulator as an ASGI 3 application over a :class:`~.core.Core`."""

    def __init__(self, core: Core) -> None:
        self.core = core

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        response: Response | Answer
        if path.startswith(ADMIN_PREFIX + "/") or path == ADMIN_PREFIX:
            response = await admin.handle(self.core, Request(scope, receive), path[len(ADMIN_PREFIX) :])
        elif path == API_PREFIX + "/openapi.json":
            response = json_response(200, openapi.document(API_PREFIX), {})
        elif path.startswith(API_PREFIX + "/"):
            await self._api(scope, receive, send)
            return
        else:
            error = ApiError(404, "not_found", "Nothing here; the API lives under /api/public/v1.")
            request_id = new_request_id()
            response = self._error_response(
                error, request_id, time.perf_counter(), {"X-Request-Id": request_id}
            )
        await response(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                resources.resume(self.core)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in list(self.core.tasks.values()):
                    task.cancel()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _api(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        request_id = new_request_id()
        request = Request(scope, receive)
        path = scope["path"][len(API_PREFIX) :]
        received = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        entry: dict[str, Any] = {
            "method": request.method,
            "path": path,
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": redacted_headers(received),
            "idempotency_key": received.get("idempotency-key"),
            "host": received.get("host", ""),
            "status": None,
            "request_id": request_id,
            "at": time.time(),
        }
        self.core.log.append(entry)
        headers = {"X-Request-Id": request_id}
        fault = self.core.faults.draw(path)
        if fault == "reset" and reset_connection(send):
            entry["status"] = "reset"
            await asyncio.sleep(0)  # let the server see the connection is gone; the answer below goes nowhere
            await Answer(500)(scope, receive, send)
            return
        response: Response | Answer
        try:
            if fault not in (None, "lost"):
                response = await self._fault(fault, scope, request_id, headers)
            if fault in (None, "slow", "reset", "lost"):
                response = await self._answer(
                    request=request,
                    received=received,
                    path=path,
                    request_id=request_id,
                    started=started,
                    headers=headers,
                )
        except ApiError as error:
            response = self._error_response(error, request_id, started, headers)
        except Exception:
            log.exception("emulator: unexpected error in %s %s", request.method, path)
            failure = ApiError(500, "internal_error", "The emulator hit an unexpected error.")
            response = self._error_response(failure, request_id, started, headers)
        if fault == "lost" and reset_connection(send):
            entry["status"] = "lost"
            return
        entry["status"] = response.status_code
        await response(scope, receive, send)

    async def _fault(
        self, kind: str, scope: dict[str, Any], request_id: str, headers: dict[str, str]
    ) -> Answer:
        """The answer of an injected fault (``slow`` only waits; a normal answer follows)."""
        if kind == "slow":
            await asyncio.sleep(self.core.settings.slow_seconds)
            return Answer(200)
        if kind == "502":
            return Answer(502, BAD_GATEWAY_HTML, {"X-Request-Id": request_id}, "text/html")
        if kind == "redirect":
            port = (scope.get("server") or ("", 80))[1]
            query = scope.get("query_string", b"").decode("latin-1")
            location = f"http://{self.core.settings.redirect_host}:{port}{scope['path']}" + (
                f"?{query}" if query else ""
            )
            return Answer(307, headers={"Location": location, "X-Request-Id": request_id})
        codes = {
            "429": (429, "rate_limited"),
            "500": (500, "internal_error"),
            "503": (503, "service_unavailable"),
        }
        status, code = codes.get(kind, (500, "internal_error"))
        extra = {"Retry-After": str(self.core.settings.fault_retry_after)} if kind == "429" else {}
        raise ApiError(status, code, f"Injected fault: {kind}.", headers=extra)

    async def _answer(
        self,
        *,
        request: Request,
        received: dict[str, str],
        path: str,
        request_id: str,
        started: float,
        headers: dict[str, str],
    ) -> Response | Answer:
        core = self.core
        route, params = routing.match(request.method, path)
        limit_headers, allowed = core.hit_rate_limit(received)
        headers.update(limit_headers)
        key = core.authenticate(received)
        if not allowed:
            raise ApiError(429, "rate_limited", "Too many requests for this key; see Retry-After.")
        if route is None:
            raise ApiError(404, "not_found", f"No endpoint {request.method} {path}.")
        if not key["scopes"]:
            raise ApiError(403, "forbidden", "This key has no scopes: it is denied this workspace.")
        if route.scope not in key["scopes"]:
            raise ApiError(
                403, "insufficient_scope", f"This call needs a key with the '{route.scope}' scope."
            )
        body: Any = None
        fingerprint = ""
        if route.body is not None:
            decoded = parse_json(await read_json_body(request), optional=route.body_optional)
            body = validate(route.body, decoded)
            fingerprint = hashlib.sha256(json.dumps(decoded, sort_keys=True).encode()).hexdigest()
        query_string = request.scope["query_string"].decode("latin-1")
        query = dict(urllib.parse.parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
        context = routing.Context(core, request, params, query, body, key)
        idempotency_key = received.get("idempotency-key")
        if request.method == "POST" and idempotency_key is not None:
            reply = await self._idempotent(
                route=route,
                context=context,
                path=path,
                idempotency_key=idempotency_key,
                fingerprint=fingerprint,
                headers=headers,
            )
        else:
            reply = await route.handler(context)
        core.authenticate(received)
        if isinstance(reply, Response):
            reply.headers.update(headers)
            return reply
        if reply.status == 204:
            return Answer(204, headers=headers)
        body_out = reply.body()
        body_out["meta"] = {
            "request_id": request_id,
            "duration_ms": round((time.perf_counter() - started) * 1000),
        }
        return json_response(reply.status, body_out, headers)

    async def _idempotent(
        self,
        *,
        route: routing.Route,
        context: routing.Context,
        path: str,
        idempotency_key: str,
        fingerprint: str,
        headers: dict[str, str],
    ) -> Reply | Response:
        """Run a POST once per ``Idempotency-Key`` and path; replay its success for 24 hours."""
        core = self.core
        if not 1 <= len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
            raise ApiError(
                422,
                "validation_error",
                "Idempotency-Key must be 1 to 255 characters.",
                details=[{"field": "Idempotency-Key", "message": "must be 1 to 255 characters"}],
            )
        record_id = hashlib.sha256(f"{path}\x00{idempotency_key}".encode()).hexdigest()
        stored = core.store.get("idempotency", record_id)
        if stored is not None and time.time() - stored["at"] > 24 * 3600:
            stored = None
        if stored is not None:
            if route.kind != "multipart" and stored["fingerprint"] != fingerprint:
                raise ApiError(
                    409,
                    "idempotency_key_reused",
                    "This Idempotency-Key was used on this path with a different body.",
                )
            headers["Idempotent-Replayed"] = "true"
            return Reply(stored["data"], stored["status"], stored["pagination"])
        if record_id in core.idempotency_in_flight:
            raise ApiError(409, "conflict", "A request with this Idempotency-Key is still in progress.")
        core.idempotency_in_flight.add(record_id)
        try:
            reply = await route.handler(context)
        finally:
            core.idempotency_in_flight.discard(record_id)
        if isinstance(reply, Reply) and 200 <= reply.status < 300:
            core.store.put(
                "idempotency",
                record_id,
                {
                    "fingerprint": fingerprint,
                    "status": reply.status,
                    "data": reply.data,
                    "pagination": reply.pagination,
                    "at": time.time(),
                },
            )
        return reply

    @staticmethod
    def _error_response(error: ApiError, request_id: str, started: float, headers: dict[str, str]) -> Answer:
        body = error.body()
        body["meta"] = {
            "request_id": request_id,
            "duration_ms": round((time.perf_counter() - started) * 1000),
        }
        return json_response(error.status, body, {**headers, **error.headers})
