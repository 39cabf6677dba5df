"""The privacy workflows: argon2 (re-authentication), Pub/Sub and file storage (GCS) between database
steps. Each step is a ``Conn``-taking function of ``service``; this module only opens the transactions
(docs/architecture.md, "Transactions").
"""

from __future__ import annotations

import secrets
from typing import Any

from functions.privacy import service
from shared import storage
from shared.config import get_settings
from shared.db import Database
from shared.logs import get_logger
from shared.pubsub import publish

log = get_logger(__name__)


def request_export(db: Database, user_id: str) -> tuple[dict[str, Any], bool]:
    """Queues an export (or returns the one already queued) and publishes it after the commit; returns
    (export, created)."""
    with db.transaction() as conn:
        row, created = service.queue_export(conn, user_id)
    if created:
        try:
            message_id = publish(service.TOPIC, {"export_id": row["id"], "user_id": user_id})
        except Exception:  # Pub/Sub down: the export stays queued for process-exports
            log.exception(
                "could not publish export %s", row["id"], extra={"event": "privacy_export_publish_failed", "export_id": row["id"]}
            )
            message_id = "unpublished"
        if message_id is None:  # Pub/Sub disabled (local): build it now
            process_export(db, row["id"])
            with db.connection() as conn:
                built = service.export_row(conn, row["id"])
            assert built is not None
            row = built
    return service.view(row), created


def process_export(db: Database, export_id: str, *, user_id: str | None = None) -> str:
    """Builds and stores one export; returns its outcome. Idempotent: a finished export is left alone.

    Raises PermanentEventError for an export that does not exist or belongs to someone else;
    anything else (storage, database) propagates so the message is redelivered.
    """
    with db.connection() as conn:
        row = service.export_to_build(conn, export_id, user_id)
    if row["status"] != "queued":
        return str(row["status"])
    object_name = f"exports/{secrets.token_hex(16)}.json"
    bucket = get_settings().exports_bucket
    try:
        with db.transaction() as conn:
            payload = service.build_bundle(conn, row["user_id"], row["id"]).encode()
        storage.upload_bytes(bucket, object_name, payload, "application/json")
    except Exception as exc:
        with db.connection() as conn:
            status = service.mark_attempt_failed(conn, export_id, exc)
        if status == "failed":
            return "failed"  # given up: the user may ask again
        raise
    with db.connection() as conn:
        marked = service.mark_ready(conn, export_id, bucket, object_name, len(payload))
    if not marked:  # finished by a duplicate delivery, or the account was erased meanwhile
        try:
            storage.delete_object(bucket, object_name)
        except Exception:  # best effort: the bucket's lifecycle rule removes it within days anyway
            log.warning("could not delete orphan export object", extra={"event": "privacy_export_orphan", "export_id": export_id})
        return "duplicate"
    log.info("export %s ready", export_id, extra={"event": "privacy_export_ready", "export_id": export_id, "bytes": len(payload)})
    return "ready"


def process_pending(db: Database, *, limit: int = 100, min_age_s: int = 0) -> dict[str, int]:
    """Builds every export still queued (a lost message, Pub/Sub down): the ``process-exports`` command."""
    with db.connection() as conn:
        ids = service.pending_exports(conn, limit=limit, min_age_s=min_age_s)
    outcomes: dict[str, int] = {}
    for export_id in ids:
        try:
            outcome = process_export(db, export_id)
        except Exception:
            outcome = "error"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes


def erase(db: Database, user_id: str, password: str, *, request_id: str | None = None) -> dict[str, Any]:
    """Erases the caller's personal data after re-authentication (401 wrong password, 5 tries per 15
    minutes, then 429); the stored files are deleted inside the erasing transaction (``service.erase``)."""
    with db.connection() as conn:
        service.reauthenticate(conn, user_id, password)
    with db.transaction() as conn:
        erased = service.erase(conn, user_id, request_id=request_id)
    log.info("account erased", extra={"event": "account_erased", "user_id": user_id, **erased["removed"]})
    return erased
