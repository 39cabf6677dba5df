"""CloudEvents and Pub/Sub: decoding push messages, the retry/dead-letter decision, publishing.

A failed event has exactly two outcomes, decided here once per error class:
  * ``PermanentEventError`` (malformed, impossible) and a domain error with a 4xx status (the same
    ``AppError`` a route would answer with: no such user, a refused amount): logged at ERROR,
    recorded in ``dead_letters``, published to the dead-letter topic ``<topic>-dead-letter`` when
    Pub/Sub is enabled, and acknowledged, so it is never retried forever;
  * anything else (database down, a 503 ``ServiceUnavailable``, a bug): raised, so Pub/Sub redelivers
    with backoff and, after the subscription's maximum attempts, moves it to the dead-letter topic itself.

Publishing itself is ``shared.pubsub`` (a leaf module, so the outbox can use it too).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shared import error_codes as codes
from shared import metrics
from shared.db import Query, get_db
from shared.errors import AppError, PermanentEventError
from shared.logs import get_logger
from shared.outbox import publishing
from shared.pubsub import publish

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
        raise PermanentEventError("not a Pub/Sub message", code=codes.NOT_PUBSUB)
    message = data["message"]
    message_id = str(message.get("messageId") or message.get("message_id") or "")[:200]
    attributes = message.get("attributes") or {}
    try:
        raw = base64.b64decode(message.get("data") or "", validate=True).decode("utf-8")
        payload = json.loads(raw)
    except (binascii.Error, UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: nested too deep
        raise PermanentEventError(f"message data is not base64 JSON: {str(exc)[:200]}", code=codes.MALFORMED_MESSAGE) from exc
    if not isinstance(payload, dict):
        raise PermanentEventError("message data must be a JSON object", code=codes.MALFORMED_MESSAGE)
    return Message(message_id=message_id, data=payload, attributes=dict(attributes), raw=raw)


def handle(source: str, topic: str | None, event: Any, fn: Callable[[Message], None]) -> None:
    """Decodes ``event`` and runs ``fn``, applying the retry/dead-letter rule above.

    Events that ``fn`` emits to the outbox are published when it returns (``shared.outbox.publishing``)."""
    message: Message | None = None
    try:
        message = decode_pubsub(event)
        with publishing():
            fn(message)
    except (PermanentEventError, AppError) as exc:
        if isinstance(exc, AppError) and exc.status >= 500:
            raise
        metrics.event_finished()
        err = exc if isinstance(exc, PermanentEventError) else PermanentEventError(exc.message, code=exc.code)
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
    else:
        metrics.event_finished()
