"""The OpenAPI 3 document, generated from the routers themselves so it cannot drift from them.

``python main.py openapi`` writes ``docs/openapi.json``; a test regenerates it and compares.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel

from shared.http import Route, Router

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in [*schema.pop("$defs", {}).items(), (model.__name__, schema)]:
        if components.setdefault(name, sub) != sub:
            raise ValueError(f"two different models are called {name}: rename one")
    return {"$ref": f"#/components/schemas/{model.__name__}"}


_OTHER_SUCCESS = {202: "accepted: not finished yet (poll the resource)"}
_ERROR_CONTENT = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}


def _error_statuses(route: Route) -> list[tuple[int, str]]:
    """The error statuses a route can answer with, in the order the router checks them."""
    out: list[tuple[int, str]] = []
    if route.params:
        out.append((404, "no such resource"))
    if route.auth is not None:
        out.append((401, "no valid session (checked before anything else in the request)"))
    if route.auth == "staff":
        out.append((403, "the account is blocked, or its role may not use this route (checked before the body)"))
    elif route.auth is not None:
        out.append((403, "the account is blocked (or the action is not allowed for it)"))
    if route.body is not None:
        out += [
            (400, "malformed or hostile JSON (too deep, duplicate keys, numbers out of range)"),
            (413, "the body is too large"),
            (415, "the body is not application/json"),
        ]
    if route.body is not None or route.query is not None or route.params:
        out.append((422, "the path, query or body is invalid; details.fields lists each problem"))
    if route.auth is not None:
        out.append((429, "too many requests for this account; details.retry_after_seconds"))
    if route.idempotent:
        out.append((409, "a request with this Idempotency-Key is still in progress"))
    return sorted(out)


def _operation(function: str, route: Route, components: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{function}_{route.handler.__name__}",
        "summary": route.summary,
        "tags": [function],
        "responses": {
            "default": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        },
    }
    # A route without a response model answers in its caller's own protocol (partner callbacks: a configured
    # body such as "1"); the contract test allows that for those routes alone.
    success = (
        {"application/json": {"schema": _schema(route.response, components)}}
        if route.response
        else {"text/plain": {"schema": {"type": "string", "description": "the answer the caller's protocol expects"}}}
    )
    replayed = {
        "Idempotent-Replayed": {
            "description": "true when this is the stored answer to an earlier request with the key",
            "schema": {"type": "string", "enum": ["true"]},
        }
    }
    ok: dict[str, Any] = {"description": "success", "content": success}
    if route.idempotent:
        ok["headers"] = replayed
    op["responses"][str(route.status)] = ok
    for status in route.statuses:
        if status == 304:  # no body: the client's copy (If-None-Match) is current
            op["responses"]["304"] = {"description": "not modified: the ETag given in If-None-Match is current"}
        else:
            op["responses"][str(status)] = {"description": _OTHER_SUCCESS.get(status, "success"), "content": success}
    if route.replay_status is not None:
        op["responses"][str(route.replay_status)] = {
            "description": "a repeat of an earlier request (same Idempotency-Key)",
            "content": success,
        }
    for status, description in _error_statuses(route):
        op["responses"][str(status)] = {"description": description, "content": _ERROR_CONTENT}
    params: list[dict[str, Any]] = []
    for name in route.params:
        params.append({"name": name, "in": "path", "required": True, "schema": {"type": "string"}})
    if route.query is not None:
        schema = route.query.model_json_schema()
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    if route.idempotent:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 128}})
    if params:
        op["parameters"] = params
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _schema(route.body, components)}}}
    if route.auth is not None:
        op["security"] = [{"session": []}]
        if route.auth == "staff":
            op["x-roles"] = sorted(route.roles)
    return op


def build(routers: Iterable[Router]) -> dict[str, Any]:
    """The whole document for ``routers`` (main.py's ``ROUTERS``)."""
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    paths: dict[str, dict[str, Any]] = {}
    for router in sorted(routers, key=lambda r: r.function):
        function = router.function
        for route in router.routes:
            path = f"/{function}{route.pattern if route.pattern != '/' else '/'}"
            paths.setdefault(path, {})[route.method.lower()] = _operation(function, route, components)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "EarnPay API",
            "version": "1",
            "description": "Every HTTP function of EarnPay. Money in every answer, event and error detail is the "
            "Money object: {micros: integer micro-dollars, formatted: display string, currency: USD}; inputs "
            "say their unit in their name (amount_micros, amount_cents). Timestamps are RFC 3339 in UTC with "
            "microseconds and Z. JSON is compact (no spaces). Errors are {error: {code, message, details}} "
            "with a 4xx status; authentication (401) and role (403) are checked before the body.",
        },
        "servers": [{"url": "http://127.0.0.1:8080", "description": "python main.py serve"}],
        "paths": {p: paths[p] for p in sorted(paths)},
        "components": {
            "schemas": {k: components[k] for k in sorted(components)},
            "securitySchemes": {"session": {"type": "http", "scheme": "bearer", "description": "a session token from /auth/login"}},
        },
    }


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"
