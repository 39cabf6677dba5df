"""One value per process, made on first use: clients that look up credentials or open channels when
constructed (the Pub/Sub publisher, the Cloud SQL connector). A leaf module."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Lazy(Generic[T]):
    """``make()`` runs once, on the first ``get()``, under a lock; ``reset()`` forgets the value (tests)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._value: T | None = None

    def get(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._make()
            return self._value

    def reset(self) -> None:
        with self._lock:
            self._value = None
