"""The contract's wire format on the server side: errors, the envelope, bodies, pagination parameters."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import pydantic
from starlette.requests import Request

#: The contract's error codes by status (the first is the generic one).
ERROR_CODES: dict[int, tuple[str, ...]] = {
    400: ("bad_request",),
    401: ("unauthorized", "agent_key_not_allowed"),
    403: ("forbidden", "insufficient_scope"),
    404: ("not_found",),
    409: ("conflict", "conversation_busy", "idempotency_key_reused"),
    413: ("payload_too_large",),
    422: ("validation_error",),
    429: ("rate_limited",),
    500: ("internal_error",),
    503: ("service_unavailable",),
}

MAX_JSON_BODY = 1024 * 1024
MAX_PAGE = 200

Model = TypeVar("Model", bound=pydantic.BaseModel)


class ApiError(Exception):
    """An error answer: the status, the contract's code, a message and (for 422) the fields."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        details: Sequence[Mapping[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = [dict(d) for d in details or ()]
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"success": False, "error": error}


def not_found(what: str, field_name: str | None = None) -> ApiError:
    details = [{"field": field_name, "message": f"no such {what}"}] if field_name else None
    return ApiError(404, "not_found", f"No such {what} in this org.", details=details)


def invalid(field_name: str, message: str) -> ApiError:
    return ApiError(
        422,
        "validation_error",
        f"Invalid {field_name}: {message}",
        details=[{"field": field_name, "message": message}],
    )


@dataclass
class Reply:
    """A handler's success: status and ``data``; ``pagination`` for lists; ``status=204`` sends no body."""

    data: Any = None
    status: int = 200
    pagination: dict[str, Any] | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": True, "data": self.data}
        if self.pagination is not None:
            body["pagination"] = self.pagination
        return body


def parse_json(raw: bytes, *, optional: bool = False) -> Any:
    """Decode a JSON body; malformed JSON is a 400 ``bad_request``. An empty body is ``{}`` when optional."""
    if not raw.strip():
        if optional:
            return {}
        raise ApiError(400, "bad_request", "The request needs a JSON body.")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise ApiError(400, "bad_request", f"Malformed JSON: {error}") from None


async def read_json_body(request: Request) -> bytes:
    """The body of a JSON request, refused with 413 past :data:`MAX_JSON_BODY` without reading it all."""
    too_large = ApiError(413, "payload_too_large", f"JSON bodies are limited to {MAX_JSON_BODY} bytes.")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_JSON_BODY:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BODY:
            raise too_large
    return bytes(body)


def validate(model: type[Model], body: Any) -> Model:
    """Check a decoded body against ``model``; every problem becomes a ``details`` item of a 422."""
    if not isinstance(body, dict):
        raise invalid("body", "must be a JSON object")
    try:
        return model.model_validate(body)
    except pydantic.ValidationError as error:
        details = [
            {"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]}
            for e in error.errors()
        ]
        raise ApiError(422, "validation_error", "The body is invalid.", details=details) from None


def int_param(query: Mapping[str, str], name: str, default: int, low: int, high: int | None = None) -> int:
    """An integer query parameter within ``[low, high]``; anything else is a 422 naming the parameter."""
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise invalid(name, "must be an integer") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise invalid(name, f"must be {bound}")
    return value


def page(items: Sequence[Any], query: Mapping[str, str], view: Callable[[Any], Any] | None = None) -> Reply:
    """One page of ``items`` (oldest first) for ``limit`` (1 to 200, default 50) and ``offset`` (>= 0).

    ``view`` (e.g. ``public``) is applied to the page's items only, so a page costs O(limit), not O(total).
    """
    limit = int_param(query, "limit", 50, 1, MAX_PAGE)
    offset = int_param(query, "offset", 0, 0)
    chunk = list(items[offset : offset + limit])
    if view is not None:
        chunk = [view(item) for item in chunk]
    pagination = {
        "limit": limit,
        "offset": offset,
        "total": len(items),
        "has_more": offset + len(chunk) < len(items),
    }
    return Reply(chunk, pagination=pagination)
