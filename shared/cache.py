"""A per-instance cache whose entries are valid only for the version they were built from.

The version comes from the database on each request (migration 0070: ``users.profile_version`` read
by the session check, ``cache_versions`` for the catalogue), so a change made through any instance
is seen by every instance on its next request; the TTL only bounds how long an unused entry stays.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class VersionedCache(Generic[V]):
    """``get(key, version)`` returns the value stored for exactly that version, while younger than ``ttl_s``."""

    def __init__(self, ttl_s: float, max_entries: int) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[int, float, V]] = OrderedDict()

    def get(self, key: str, version: int) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            stored_version, expires_at, value = entry
            if stored_version != version or expires_at <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, version: int, value: V) -> None:
        with self._lock:
            self._entries[key] = (version, time.monotonic() + self.ttl_s, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
