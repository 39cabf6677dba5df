"""Publishing to Pub/Sub: one lazily created client per process, and JSON messages.

A leaf module (only configuration below it), so both ``shared.events`` and ``shared.outbox`` use it.
"""

from __future__ import annotations

import json
from typing import Any

from shared.config import get_settings
from shared.lazy import Lazy


def _make_publisher() -> Any:
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # namespace package mypy cannot see

    return pubsub_v1.PublisherClient()


_publisher: Lazy[Any] = Lazy(_make_publisher)


def client() -> Any:
    """The process's one publisher client."""
    return _publisher.get()


def topic_path(topic: str) -> str:
    return f"projects/{get_settings().gcp_project}/topics/{topic}"


def publish(topic: str, payload: dict[str, Any], attributes: dict[str, str] | None = None, *, timeout: float = 10.0) -> str | None:
    """Publishes a JSON message and waits for its id; returns None when Pub/Sub is disabled."""
    if not get_settings().pubsub_enabled:
        return None
    data = json.dumps(payload, separators=(",", ":"), default=str).encode()
    future = client().publish(topic_path(topic), data, **(attributes or {}))
    return str(future.result(timeout=timeout))


def reset_publisher() -> None:
    """Drops the cached client (tests switch emulators)."""
    _publisher.reset()
