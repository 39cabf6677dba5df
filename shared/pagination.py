"""Keyset pagination: opaque cursors (base64url of a small JSON object) and the shared page parameters.

A cursor names the list it belongs to (``kind``) and the key of the last row served; the next page
starts strictly after it, so pages never repeat or skip rows however the list grows meanwhile.
A cursor that does not decode, belongs to another list or carries the wrong types is a 422
(``invalid_cursor``), never a 500. Cursors are not secret: they only position a read of the
caller's own rows.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any

from pydantic import Field

from shared import error_codes as codes
from shared.errors import ValidationFailed
from shared.models import QueryParams

MAX_CURSOR_CHARS = 512
_VERSION = 1


class PageQuery(QueryParams):
    """``?limit=1..200&cursor=<opaque>``."""

    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: Annotated[str | None, Field(min_length=1, max_length=MAX_CURSOR_CHARS)] = None


def encode_cursor(kind: str, key: dict[str, Any]) -> str:
    """An opaque cursor for ``key`` (JSON-serialisable scalars) in the list ``kind``."""
    raw = json.dumps({"v": _VERSION, "k": kind, **key}, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, kind: str, fields: dict[str, type | tuple[type, ...]]) -> dict[str, Any]:
    """The key inside ``cursor``, checked against ``fields`` (name -> expected type); 422 otherwise."""
    invalid = ValidationFailed("the cursor is not valid for this list; start again without it", code=codes.INVALID_CURSOR)
    if not cursor or len(cursor) > MAX_CURSOR_CHARS:
        raise invalid
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise invalid from exc
    if not isinstance(data, dict) or data.get("v") != _VERSION or data.get("k") != kind:
        raise invalid
    key = {name: data.get(name) for name in fields}
    if set(data) - {"v", "k"} != set(fields):
        raise invalid
    for name, expected in fields.items():
        value = key[name]
        # bool is an int subclass: never accept it where a number is expected
        if isinstance(value, bool) or not isinstance(value, expected):
            raise invalid
    return key
