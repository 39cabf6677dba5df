"""Identifiers from the outside world (path segments, message fields)."""

from __future__ import annotations

import uuid
from typing import Any


def uuid_or(value: Any, error: BaseException) -> str:
    """``value`` as a canonical UUID string; raises ``error`` when it is not a UUID."""
    try:
        return str(uuid.UUID(str(value)))
    except (ValueError, TypeError, AttributeError) as exc:
        raise error from exc
