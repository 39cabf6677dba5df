"""Rendering answers as JSON text: the one JSON style of every response, stored idempotent answer and
command-line output. A leaf module (it imports only ``shared.errors`` and ``shared.models``), so the
HTTP layer, idempotency and the command line all use it without importing each other."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

import flask
from pydantic import BaseModel

from shared.errors import AppError
from shared.models import rfc3339


def _json_default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (bytes, memoryview)):
        return bytes(value).hex()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(payload: Any) -> str:
    """JSON text for a response (datetimes as RFC 3339 UTC, UUIDs as strings)."""
    return json.dumps(payload, default=_json_default, separators=(",", ":"), ensure_ascii=False)


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> flask.Response:
    body = payload if isinstance(payload, str) else dumps(payload)
    resp = flask.Response(body, status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def error_response(err: AppError) -> flask.Response:
    payload = {"error": {"code": err.code, "message": err.message, "details": err.details}}
    return json_response(payload, err.status, err.headers)


def echo(obj: Any) -> None:
    """Prints a command's result: text as it is, anything else as one line of JSON."""
    print(dumps(obj) if not isinstance(obj, str) else obj)
