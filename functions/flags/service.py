"""Feature flags for gradual rollouts.

``is_enabled(conn, key, user_id)`` is the hot path: it reads a per-instance snapshot of every flag (one
small query at most every ``CACHE_TTL_S`` seconds) and decides with a stable hash, so all
instances give a user the same answer and raising a percentage only ever adds users:

    on  <=>  flag enabled  and  bucket(key, user_id) < rollout_percent
    bucket(key, user_id) = first 8 bytes of sha256("<key>:<user_id>") as an unsigned integer, mod 100

Hashing the key with the user gives each flag its own independent 10 % (not always the same users).
Unknown flags are off. A call without a user (anonymous) is on only at 100 %.

Writes (``set_flag``) belong to ``admin`` staff through the admin function, which audits them; a
write drops this instance's cache at once, other instances see it within ``CACHE_TTL_S``.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from functions.flags import queries as q
from shared import error_codes as codes
from shared.db import Conn
from shared.errors import ValidationFailed

CACHE_TTL_S = 30.0
KEY_PATTERN = re.compile(r"^[a-z][a-z0-9_.-]{1,63}$")
MAX_DESCRIPTION = 500


def bucket(key: str, user_id: str) -> int:
    """The user's stable bucket 0..99 for this flag (same in every instance and every release)."""
    digest = hashlib.sha256(f"{key}:{str(user_id).lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def decide(enabled: bool, rollout_percent: int, key: str, user_id: str | None) -> bool:
    """The rule above, without any I/O."""
    if not enabled or rollout_percent <= 0:
        return False
    if rollout_percent >= 100:
        return True
    if user_id is None:
        return False
    return bucket(key, user_id) < rollout_percent


@dataclass(frozen=True)
class FlagState:
    enabled: bool
    rollout_percent: int


class FlagCache:
    """Every flag's state, reloaded when older than ``ttl_s`` or after ``invalidate()``. Thread-safe."""

    def __init__(self, ttl_s: float = CACHE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._states: dict[str, FlagState] | None = None
        self._loaded_at = 0.0
        self.loads = 0  # how many times the table was read (tests and metrics)

    def states(self, conn: Conn) -> dict[str, FlagState]:
        """Every flag's state: the snapshot while fresh, else read again on the caller's connection."""
        now = self.clock()
        with self._lock:
            if self._states is not None and now - self._loaded_at < self.ttl_s:
                return self._states
        rows = conn.all(q.ALL_FLAG_STATES)
        states = {r["key"]: FlagState(bool(r["enabled"]), int(r["rollout_percent"])) for r in rows}
        with self._lock:
            self._states, self._loaded_at = states, now
            self.loads += 1
        return states

    def invalidate(self) -> None:
        with self._lock:
            self._states = None


_cache = FlagCache()


def is_enabled(conn: Conn, key: str, user_id: str | None, *, cache: FlagCache | None = None) -> bool:
    """Whether flag ``key`` is on for ``user_id`` (cached read: at most one query on ``conn`` per instance per TTL)."""
    state = (cache or _cache).states(conn).get(key)
    return state is not None and decide(state.enabled, state.rollout_percent, key, user_id)


def invalidate_cache() -> None:
    """Drops this instance's cached flags (``set_flag`` does it; call again after the commit to be exact)."""
    _cache.invalidate()


def list_flags(conn: Conn) -> list[dict[str, Any]]:
    """Every flag, by key: key, description, enabled, rollout_percent, created_at, updated_at, updated_by."""
    return conn.all(q.ALL_FLAGS)


def set_flag(
    conn: Conn,
    key: str,
    enabled: bool,
    rollout_percent: int,
    description: str | None,
    staff_id: str | None,
) -> dict[str, Any]:
    """Creates or changes a flag; returns {"before": row or None, "after": row} for the audit log.

    Call inside the caller's transaction (with the audit insert), as an ``admin``. ``description``
    None keeps the current one.
    """
    if not isinstance(key, str) or not KEY_PATTERN.match(key):
        raise ValidationFailed("flag key must be 2-64 characters: lower case letters, digits, '_', '.', '-'", code=codes.INVALID_FLAG_KEY)
    if not isinstance(enabled, bool):
        raise ValidationFailed("enabled must be true or false", code=codes.INVALID_FLAG)
    if not isinstance(rollout_percent, int) or isinstance(rollout_percent, bool) or not 0 <= rollout_percent <= 100:
        raise ValidationFailed("rollout_percent must be an integer from 0 to 100", code=codes.INVALID_ROLLOUT_PERCENT)
    if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
        raise ValidationFailed(f"description must be at most {MAX_DESCRIPTION} characters", code=codes.INVALID_FLAG)
    before = conn.one(q.FLAG_FOR_UPDATE, key=key)
    after = conn.one(q.UPSERT_FLAG, key=key, description=description, enabled=enabled, rollout_percent=rollout_percent, staff_id=staff_id)
    assert after is not None
    _cache.invalidate()
    return {"before": before, "after": after}
