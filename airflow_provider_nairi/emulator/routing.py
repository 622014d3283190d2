"""The route table: every endpoint of the contract, with its scope and body model, in one registry.

Resource modules register handlers with :func:`route`; the ASGI app (:mod:`.app`) matches requests against the
table, and :mod:`.openapi` describes it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from airflow_provider_nairi.emulator.protocol import Reply
from airflow_provider_nairi.emulator.schemas import Body

if TYPE_CHECKING:
    from airflow_provider_nairi.emulator.core import Core


@dataclass
class Context:
    """What a handler gets: the emulator core, the request, path and query parameters, the checked body."""

    core: Core
    request: Request
    params: dict[str, str]
    query: Mapping[str, str]
    body: Any
    key: dict[str, Any]


Handler = Callable[[Context], Awaitable["Reply | Response"]]


@dataclass
class Route:
    method: str
    template: str
    scope: str
    handler: Handler
    #: The JSON body model, or ``None`` for no JSON body (GET, DELETE, multipart uploads).
    body: type[Body] | None
    #: ``json`` (an envelope), ``multipart`` (an upload: idempotency by key and path only), ``raw`` (bytes).
    kind: str = "json"
    #: Status of the success answer (for the OpenAPI document).
    status: int = 200
    #: Optional JSON body: cancel, run and reprocess accept nothing or ``{}``.
    body_optional: bool = False
    pattern: re.Pattern[str] = field(init=False)

    def __post_init__(self) -> None:
        self.pattern = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")

    @property
    def summary(self) -> str:
        return (self.handler.__doc__ or "").strip().splitlines()[0] if self.handler.__doc__ else ""


ROUTES: list[Route] = []


def route(
    method: str,
    template: str,
    scope: str,
    *,
    body: type[Body] | None = None,
    kind: str = "json",
    status: int = 200,
    body_optional: bool = False,
) -> Callable[[Handler], Handler]:
    """Register a handler for ``method template`` (``template`` relative to ``/api/public/v1``)."""

    def register(handler: Handler) -> Handler:
        ROUTES.append(Route(method, template, scope, handler, body, kind, status, body_optional))
        return handler

    return register


def match(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
    """The route for ``method path`` and its path parameters; ``(None, {})`` when there is none."""
    for candidate in ROUTES:
        if candidate.method == method:
            found = candidate.pattern.match(path)
            if found:
                return candidate, found.groupdict()
    return None, {}
