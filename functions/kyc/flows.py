"""The KYC workflows: file storage (GCS) between database steps.

An object-finalized event reads the document, checks the file in the bucket (its first bytes), then
records the outcome in a short transaction; a refused file is deleted after that commit. Each step
is a ``Conn``-taking function of ``service``; this module only opens the transactions
(docs/architecture.md, "Transactions").
"""

from __future__ import annotations

import logging
from typing import Any

from functions.kyc import service
from functions.kyc.models import StorageObject
from shared import storage
from shared.config import get_settings
from shared.db import Database
from shared.logs import get_logger

log = get_logger(__name__)


def _reject(db: Database, doc: dict[str, Any], obj: StorageObject, reason: str) -> str:
    changed = db.run_in_transaction(lambda conn: service.mark_rejected(conn, doc, obj, reason))
    log.warning(
        "kyc document %s refused: %s",
        doc["id"],
        reason,
        extra={"event": "kyc_document_refused", "document_id": doc["id"], "object": obj.name},
    )
    # After the commit: a redelivery finds the document rejected and deletes again (idempotent).
    service.delete_quietly(obj)
    return "rejected" if changed else "duplicate"


def record_upload(db: Database, obj: StorageObject) -> str:
    """Applies one object-finalized event; returns what happened (for logs and tests).

    ``recorded``: the document is uploaded and the user in review; ``rejected``: what arrived differs
    from what was declared (the object is deleted); ``duplicate``: a redelivery, nothing changed;
    ``ignored``: not one of our documents; ``gone``: the object vanished before we could check it;
    ``deleted``: the document was erased, so the late upload is deleted too.
    Database or storage trouble raises (the event is retried).
    """
    with db.connection() as conn:
        doc = service.document_for_object(conn, obj)
    if doc is None:
        expected = obj.bucket == get_settings().kyc_bucket
        log.log(
            logging.INFO if expected else logging.WARNING,
            "kyc event for an unknown object %s/%s ignored",
            obj.bucket,
            obj.name,
            extra={"event": "kyc_unknown_object", "bucket": obj.bucket, "object": obj.name},
        )
        return "ignored"

    if doc["status"] == "deleted":
        # Erased (privacy): a file that still arrives through a live upload URL must not stay.
        service.delete_quietly(obj)
        log.info("kyc upload for an erased document deleted", extra={"event": "kyc_erased_upload_deleted", "document_id": doc["id"]})
        return "deleted"
    if doc["status"] != "awaiting_upload":
        if doc["generation"] is not None and int(doc["generation"]) == obj.generation:
            if doc["status"] == "rejected":
                service.delete_quietly(obj)  # finish a deletion a failed delivery may have left undone
            return "duplicate"
        if doc["status"] == "uploaded" and doc["review_id"] is None:
            # The same name finalized again with new bytes: never review something that changed.
            return _reject(db, doc, obj, "object_replaced: the file changed after it was uploaded")
        log.warning(
            "kyc event for document %s in status %s ignored",
            doc["id"],
            doc["status"],
            extra={"event": "kyc_stale_event", "document_id": doc["id"], "object": obj.name},
        )
        return "ignored"

    try:
        reason = service.mismatch(doc, obj) or service.sniff(obj, doc["content_type"])
    except service.ObjectGone:
        log.warning(
            "kyc object %s vanished before it was checked",
            obj.name,
            extra={"event": "kyc_object_gone", "document_id": doc["id"], "object": obj.name},
        )
        return "gone"
    if reason is not None:
        return _reject(db, doc, obj, reason)

    recorded = db.run_in_transaction(lambda conn: service.mark_uploaded(conn, doc, obj))
    if recorded:
        log.info(
            "kyc document %s uploaded",
            doc["id"],
            extra={"event": "kyc_document_recorded", "document_id": doc["id"], "size_bytes": obj.size},
        )
    return "recorded" if recorded else "duplicate"


def sync_document(db: Database, document_id: str) -> str:
    """Applies the object's current state as its finalize event would; ``missing`` when nothing was uploaded.

    For local runs (the emulator sends no events) and for a sweep after lost events.
    """
    with db.connection() as conn:
        doc = service.document_location(conn, document_id)
    meta = storage.object_metadata(doc["bucket"], doc["object_name"])
    if meta is None:
        return "missing"
    return record_upload(db, StorageObject.model_validate(meta))


def reconcile_uploads(db: Database, *, min_age_s: int = 120, limit: int = 500) -> dict[str, int]:
    """Syncs documents still awaiting upload ``min_age_s`` after their URL was issued; counts the outcomes."""
    with db.connection() as conn:
        ids = service.awaiting_uploads(conn, min_age_s=min_age_s, limit=limit)
    outcomes: dict[str, int] = {}
    for document_id in ids:
        outcome = sync_document(db, document_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
