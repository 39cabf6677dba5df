"""One value per process, made on first use: clients that look up credentials or open channels when
constructed (the Pub/Sub publisher, the Cloud SQL connector). A leaf module."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar, cast

T = TypeVar("T")


class Lazy(Generic[T]):
    """``make()`` runs once, on the first ``get()``, under a lock; ``reset()`` forgets the value (tests).

    Once made, ``get()`` takes no lock (hot paths ask on every call: telemetry that is off is a made
    ``None``)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: T | None = None
        self._made = False

    def get(self) -> T:
        if not self._made:
            with self._lock:
                if not self._made:
                    self._value = self._make()
                    self._made = True
        return cast(T, self._value)

    def reset(self) -> None:
        with self._lock:
            self._value = None
            self._made = False
