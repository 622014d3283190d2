"""The OpenAPI 3.1 document of the emulated API, built from the route table and the body models."""

from __future__ import annotations

import functools
from typing import Any

from airflow_provider_nairi.emulator import routing
from airflow_provider_nairi.emulator.protocol import ERROR_CODES

MULTIPART_FIELDS = {
    "/artifacts": {"file": "binary", "name": "string", "conversation_id": "string"},
    "/videos": {"file": "binary", "title": "string"},
}
LIST_PARAMS = [
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 200, "default": 50},
    },
    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
]


def _operation(route: routing.Route) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": route.summary,
        "operationId": route.handler.__name__,
        "x-scope": route.scope,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in route.pattern.groupindex
        ],
        "responses": {
            str(route.status): {"description": "success (raw bytes for downloads, no body for 204)"},
            **{str(status): {"description": ", ".join(codes)} for status, codes in ERROR_CODES.items()},
        },
    }
    if route.method == "GET" and not route.template.endswith(("}", "/me", "/content")):
        operation["parameters"] += LIST_PARAMS
    if route.body is not None:
        operation["requestBody"] = {
            "required": not route.body_optional,
            "content": {"application/json": {"schema": route.body.model_json_schema()}},
        }
    elif route.kind == "multipart":
        fields = MULTIPART_FIELDS.get(route.template, {"file": "binary"})
        schema = {
            "type": "object",
            "required": ["file"],
            "properties": {
                name: {"type": "string", "format": "binary"} if kind == "binary" else {"type": "string"}
                for name, kind in fields.items()
            },
        }
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": schema}}}
    return operation


@functools.cache
def document(prefix: str) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routing.ROUTES:
        paths.setdefault(route.template, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Nairi public API (local emulator)", "version": "1"},
        "servers": [{"url": prefix}],
        "components": {
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            }
        },
        "security": [{"apiKey": []}, {"bearer": []}],
        "paths": paths,
    }
