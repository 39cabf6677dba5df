"""Event entry of the ``kyc`` area: ``google.cloud.storage.object.v1.finalized`` from the KYC bucket.

Eventarc delivers the object resource (JSON API shape) as the CloudEvent's data. This is not a
Pub/Sub message, so it is decoded here, with the same two outcomes for failures: a malformed event
is logged at ERROR, recorded in ``dead_letters`` and acknowledged; anything else (database or
storage unavailable) is raised, so Eventarc redelivers it.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from functions.kyc import flows
from functions.kyc.models import StorageObject
from shared import error_codes as codes
from shared.db import get_db
from shared.errors import PermanentEventError
from shared.events import RECORD_DEAD_LETTER
from shared.logs import get_logger

log = get_logger(__name__)

SOURCE = "kyc_document_uploaded"
FINALIZED = "google.cloud.storage.object.v1.finalized"


def _attr(event: Any, name: str) -> str | None:
    try:
        value = event[name]
    except (KeyError, TypeError):
        value = getattr(event, name, None)
    return None if value is None else str(value)


def parse_event(event: Any) -> StorageObject | None:
    """The object resource of a finalize event; None for other event types; PermanentEventError if malformed."""
    event_type = _attr(event, "type")
    if event_type is not None and event_type != FINALIZED:
        return None
    data = getattr(event, "data", None)
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise PermanentEventError("event data is not JSON", code=codes.MALFORMED_EVENT) from exc
    if not isinstance(data, dict):
        raise PermanentEventError("event data is not a storage object resource", code=codes.MALFORMED_EVENT)
    try:
        return StorageObject.model_validate(data)
    except ValidationError as exc:
        raise PermanentEventError(
            f"event data is not a storage object resource: {exc.error_count()} errors", code=codes.MALFORMED_EVENT
        ) from exc


def kyc_document_uploaded(event: Any) -> None:
    """Records an uploaded KYC document and moves the user to review (idempotent per object generation)."""
    event_id = (_attr(event, "id") or "")[:200] or None
    try:
        obj = parse_event(event)
    except PermanentEventError as err:
        log.error(
            "%s dead-lettered event %s: %s",
            SOURCE,
            event_id,
            err.reason,
            extra={"event": f"{SOURCE}_dead_lettered", "failure": err.code, "message_id": event_id},
        )
        payload = json.dumps(getattr(event, "data", None), default=str)[:10_000]
        with get_db().connection() as conn:
            conn.execute(RECORD_DEAD_LETTER, source=SOURCE, message_id=event_id, reason=err.reason[:2000], code=err.code, payload=payload)
        return
    if obj is None:
        log.info("%s ignored event type %s", SOURCE, _attr(event, "type"), extra={"event": "kyc_event_ignored", "message_id": event_id})
        return
    outcome = flows.record_upload(get_db(), obj)
    log.info("%s %s: %s", SOURCE, event_id, outcome, extra={"event": "kyc_event_applied", "outcome": outcome, "message_id": event_id})
