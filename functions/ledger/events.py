"""Event entry of the ``ledger`` area (CloudEvents from Pub/Sub topic ``earnings-credit-requests``).

Every failed credit is logged at ERROR with ``event = "credit_failed"`` (the alert's filter is
``jsonPayload.event="credit_failed"``): ``retry: false`` for a permanent failure (dead-lettered by
``shared.events.handle`` and acknowledged), ``retry: true`` for a transient one (raised, so Pub/Sub
redelivers with backoff and, after the subscription's maximum attempts, dead-letters it itself).
"""

from __future__ import annotations

from typing import Any

from functions.ledger import credits
from shared import metrics
from shared.db import get_db
from shared.errors import PermanentEventError
from shared.events import Message, decode_pubsub, handle
from shared.logs import get_logger

log = get_logger(__name__)

TOPIC = "earnings-credit-requests"
SOURCE = "credit_earnings"


def _message_id(event: Any) -> str | None:
    """The Pub/Sub message id of an event, even one whose data cannot be decoded."""
    data = getattr(event, "data", None)
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, dict):
        return None
    mid = message.get("messageId") or message.get("message_id")
    return str(mid)[:200] if mid else None


def _log_failed(reason: str, code: str, *, retry: bool, message_id: str | None, request: dict[str, Any] | None = None) -> None:
    req = request or {}
    log.error(
        "credit request %s failed (%s): %s",
        message_id,
        "will retry" if retry else "dead-lettered",
        reason,
        extra={
            "event": "credit_failed",
            "retry": retry,
            "failure": code,
            "message_id": message_id,
            "request_id": req.get("request_id"),
            "source": req.get("source"),
            "user_id": req.get("user_id"),
        },
    )


def _apply(message: Message) -> None:
    try:
        req = credits.parse(message.raw)
        with get_db().transaction() as conn:
            result = credits.apply(conn, req, message_id=message.message_id or None)
    except PermanentEventError as err:
        metrics.credit("failed")
        _log_failed(err.reason, err.code, retry=False, message_id=message.message_id, request=message.data)
        raise
    metrics.credit("duplicate" if result.duplicate else "applied")
    log.info(
        "credit request %s/%s %s entry %s",
        req.source,
        req.request_id,
        "was already applied as" if result.duplicate else "applied as",
        result.entry_id,
        extra={
            "event": "credit_duplicate" if result.duplicate else "credit_applied",
            "source": req.source,
            "request_id": req.request_id,
            "user_id": str(req.user_id),
            "entry_id": result.entry_id,
            "amount_micros": req.amount_micros,
            "message_id": message.message_id,
        },
    )


def credit_earnings(event: Any) -> None:
    """Applies one credit request: permanent failures are dead-lettered, transient ones raised for redelivery."""
    try:
        decode_pubsub(event)
    except PermanentEventError as err:  # ``handle`` dead-letters it; the alert needs our event name
        _log_failed(err.reason, err.code, retry=False, message_id=_message_id(event))
    try:
        handle(SOURCE, TOPIC, event, _apply)
    except Exception as exc:  # database unavailable, a broken connection, a bug: Pub/Sub redelivers
        _log_failed(f"{type(exc).__name__}: {exc}", getattr(exc, "code", "transient"), retry=True, message_id=_message_id(event))
        raise
