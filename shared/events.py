"""CloudEvents and Pub/Sub: decoding push messages, the retry/dead-letter decision, publishing.

A failed event has exactly two outcomes, decided here once per error class:
  * ``PermanentEventError`` (malformed, impossible): logged at ERROR, recorded in ``dead_letters``,
    published to the dead-letter topic ``<topic>-dead-letter`` when Pub/Sub is enabled, and
    acknowledged, so it is never retried forever;
  * anything else (database down, a bug): raised, so Pub/Sub redelivers with backoff and, after the
    subscription's maximum attempts, moves it to the dead-letter topic itself.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared.config import get_settings
from shared.db import Query, get_db
from shared.errors import PermanentEventError
from shared.logs import get_logger

log = get_logger(__name__)

RECORD_DEAD_LETTER = Query(
    "record_dead_letter",
    """INSERT INTO dead_letters (source, message_id, reason, code, payload)
       VALUES (:source, :message_id, :reason, :code, :payload)""",
)


@dataclass(frozen=True)
class Message:
    """A decoded Pub/Sub message."""

    message_id: str
    data: dict[str, Any]
    attributes: dict[str, str] = field(default_factory=dict)
    raw: str = ""


def decode_pubsub(event: Any) -> Message:
    """The JSON object inside a Pub/Sub CloudEvent (``data.message.data`` is base64)."""
    data = event.data if hasattr(event, "data") else event
    if not isinstance(data, dict) or not isinstance(data.get("message"), dict):
        raise PermanentEventError("not a Pub/Sub message", code="not_pubsub")
    message = data["message"]
    message_id = str(message.get("messageId") or message.get("message_id") or "")[:200]
    attributes = message.get("attributes") or {}
    try:
        raw = base64.b64decode(message.get("data") or "", validate=True).decode("utf-8")
        payload = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise PermanentEventError(f"message data is not base64 JSON: {str(exc)[:200]}", code="malformed_message") from exc
    if not isinstance(payload, dict):
        raise PermanentEventError("message data must be a JSON object", code="malformed_message")
    return Message(message_id=message_id, data=payload, attributes=dict(attributes), raw=raw)


def handle(source: str, topic: str | None, event: Any, fn: Callable[[Message], None]) -> None:
    """Decodes ``event`` and runs ``fn``, applying the retry/dead-letter rule above."""
    message: Message | None = None
    try:
        message = decode_pubsub(event)
        fn(message)
    except PermanentEventError as err:
        raw = message.raw if message else json.dumps(getattr(event, "data", None), default=str)[:10_000]
        message_id = message.message_id if message else None
        log.error(
            "%s dead-lettered message %s: %s",
            source,
            message_id,
            err.reason,
            extra={"event": f"{source}_dead_lettered", "failure": err.code, "message_id": message_id},
        )
        with get_db().connection() as conn:
            conn.execute(RECORD_DEAD_LETTER, source=source, message_id=message_id, reason=err.reason[:2000], code=err.code, payload=raw)
        if topic:
            publish(f"{topic}-dead-letter", {"reason": err.reason, "code": err.code, "payload": raw}, {"source": source})


_publisher_lock = threading.Lock()
_publisher: Any = None


def _client() -> Any:
    global _publisher
    with _publisher_lock:
        if _publisher is None:
            from google.cloud import pubsub_v1  # type: ignore[attr-defined]  # namespace package mypy cannot see

            _publisher = pubsub_v1.PublisherClient()
        return _publisher


def topic_path(topic: str) -> str:
    return f"projects/{get_settings().gcp_project}/topics/{topic}"


def publish(topic: str, payload: dict[str, Any], attributes: dict[str, str] | None = None, *, timeout: float = 10.0) -> str | None:
    """Publishes a JSON message and waits for its id; returns None when Pub/Sub is disabled."""
    if not get_settings().pubsub_enabled:
        return None
    data = json.dumps(payload, separators=(",", ":"), default=str).encode()
    future = _client().publish(topic_path(topic), data, **(attributes or {}))
    return str(future.result(timeout=timeout))


def reset_publisher() -> None:
    """Drops the cached client (tests switch emulators)."""
    global _publisher
    with _publisher_lock:
        _publisher = None
