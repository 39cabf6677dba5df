"""KYC: upload URLs for identity documents, recording what arrives, and compliance decisions.

The user asks for an upload URL (a document row 'awaiting_upload', the user 'pending'); the file
goes straight from the device to the private bucket through a V4 signed PUT; the bucket's
object-finalized event checks what arrived against what was declared and records it (the user goes
'in_review'); compliance staff look at the documents through short-lived signed download URLs and
decide (verified or rejected, with a reason). Every KYC transaction locks the user's row first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from functions.earnings import bonuses
from functions.kyc import queries as q
from functions.kyc.models import DocumentUploadBody, StorageObject
from functions.notifications.service import notify
from shared import error_codes as codes
from shared import pagination, storage
from shared.config import get_settings
from shared.db import Conn
from shared.errors import Conflict, Forbidden, NotFound, RateLimited, ValidationFailed
from shared.ids import uuid_or
from shared.logs import get_logger

log = get_logger(__name__)

UPLOAD_URL_TTL_S = 15 * 60
DOWNLOAD_URL_TTL_S = 5 * 60
MAX_OPEN_UPLOADS = 10  # upload URLs a user may hold at once
MAX_DOCUMENTS_PER_DAY = 20  # documents a user may start in 24 hours (the bucket keeps every object for years)
DECISIONS = ("verified", "rejected")
REVIEWER_ROLES = frozenset({"compliance", "admin"})
REASON_MAX = 500

# The first bytes every file of a type starts with: the content type is the client's claim, the
# magic number is the file's.
MAGIC: dict[str, tuple[bytes, ...]] = {
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "application/pdf": (b"%PDF-",),
}


# --- cursors (shared.pagination: opaque, bound to their list) --------------------------------------
def encode_cursor(kind: str, at: dt.datetime, row_id: str) -> str:
    return pagination.encode_cursor(kind, {"at": at.isoformat(), "id": row_id})


def decode_cursor(kind: str, cursor: str) -> tuple[dt.datetime, str]:
    """The (timestamp, id) a cursor points after; 422 for anything we did not issue."""
    key = pagination.decode_cursor(cursor, kind, {"at": str, "id": str})
    try:
        at = dt.datetime.fromisoformat(key["at"])
        row_id = str(uuid.UUID(key["id"]))
    except ValueError as exc:
        raise ValidationFailed("the cursor is not valid for this list; start again without it", code=codes.INVALID_CURSOR) from exc
    if at.tzinfo is None:
        raise ValidationFailed("the cursor is not valid for this list; start again without it", code=codes.INVALID_CURSOR)
    return at, row_id


def _uuid(value: str, what: str, code: str) -> str:
    return uuid_or(value, NotFound(f"no such {what}", code=code))


# --- the user's side ------------------------------------------------------------------------------
def new_object_name() -> str:
    """A name that says nothing about its user, kind or date: 128 random bits."""
    return f"kyc/{uuid.uuid4().hex}"


def request_upload(conn: Conn, user_id: str, body: DocumentUploadBody) -> dict[str, Any]:
    """Registers a document the user is about to upload and returns its signed upload URL.

    Refused for a verified user (409) and past the caps on open URLs and daily documents (429).
    The URL is signed inside the caller's transaction: if signing fails, nothing is written.
    """
    bucket = get_settings().kyc_bucket
    user = conn.one(q.LOCK_USER, user_id=user_id)
    if user is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    if user["kyc_status"] == "verified":
        raise Conflict("your identity is already verified", code=codes.KYC_ALREADY_VERIFIED)
    counts = conn.one(q.UPLOAD_COUNTS, user_id=user_id) or {}
    now = dt.datetime.now(dt.UTC)
    if int(counts.get("open_urls") or 0) >= MAX_OPEN_UPLOADS:
        wait = (counts["first_expiry"] - now).total_seconds() if counts.get("first_expiry") else UPLOAD_URL_TTL_S
        raise RateLimited(
            f"you already have {MAX_OPEN_UPLOADS} uploads waiting; use them or wait until they expire",
            retry_after=int(wait) + 1,
            code=codes.TOO_MANY_OPEN_UPLOADS,
        )
    if int(counts.get("last_day") or 0) >= MAX_DOCUMENTS_PER_DAY:
        first = counts.get("first_of_day")
        wait = (first + dt.timedelta(days=1) - now).total_seconds() if first else 86_400
        raise RateLimited(
            f"at most {MAX_DOCUMENTS_PER_DAY} documents a day; try again later", retry_after=int(wait) + 1, code=codes.TOO_MANY_DOCUMENTS
        )
    object_name = new_object_name()
    doc = conn.one(
        q.INSERT_DOCUMENT,
        user_id=user_id,
        bucket=bucket,
        object_name=object_name,
        kind=body.kind,
        content_type=body.content_type,
        size_bytes=body.size_bytes,
        ttl_s=UPLOAD_URL_TTL_S,
    )
    assert doc is not None
    conn.execute(q.SET_PENDING, user_id=user_id)
    signed = storage.signed_upload_url(bucket, object_name, body.content_type, body.size_bytes, UPLOAD_URL_TTL_S)
    log.info(
        "kyc upload url issued for document %s",
        doc["id"],
        extra={"event": "kyc_upload_url_issued", "document_id": doc["id"], "kind": body.kind, "size_bytes": body.size_bytes},
    )
    return {
        "document_id": doc["id"],
        "kind": body.kind,
        "upload_url": signed.url,
        "method": signed.method,
        "headers": signed.headers,
        "expires_at": min(signed.expires_at, doc["upload_expires_at"]),
        "max_bytes": body.size_bytes,
    }


def status(conn: Conn, user_id: str, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """The user's KYC status, the last decision (without its reason) and their documents, newest first."""
    kyc_status = conn.value(q.USER_KYC_STATUS, user_id=user_id)
    if kyc_status is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    last = conn.one(q.LAST_DECISION, user_id=user_id)
    if cursor:
        after_at, after_id = decode_cursor("kyc_documents", cursor)
        rows = conn.all(q.USER_DOCUMENTS_AFTER, user_id=user_id, after_at=after_at, after_id=after_id, limit=limit + 1)
    else:
        rows = conn.all(q.USER_DOCUMENTS_FIRST, user_id=user_id, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "kyc_status": kyc_status,
        # A decision's reason is compliance's note and is never shown to the user (it may concern
        # suspected fraud: telling the subject is "tipping off").
        "last_decision": {"decision": last["decision"], "decided_at": last["decided_at"]} if last else None,
        "items": rows,
        "next_cursor": encode_cursor("kyc_documents", rows[-1]["created_at"], rows[-1]["id"]) if more and rows else None,
    }


# --- the finalize event ---------------------------------------------------------------------------
def mismatch(doc: dict[str, Any], obj: StorageObject) -> str | None:
    """Why what arrived is not what was declared, or None (size and content type only)."""
    received_type = (obj.content_type or "").split(";")[0].strip().lower()
    if received_type != doc["content_type"]:
        return f"content_type_mismatch: declared {doc['content_type']}, received {received_type or 'none'}"[:REASON_MAX]
    if obj.size != int(doc["size_bytes"]):
        return f"size_mismatch: declared {doc['size_bytes']} bytes, received {obj.size}"
    return None


class ObjectGone(Exception):
    """The object named by the event no longer exists."""


def sniff(obj: StorageObject, content_type: str) -> str | None:
    """Checks the file's magic number: None when it matches, else the reason to refuse it."""
    from google.api_core.exceptions import NotFound as GcsNotFound

    try:
        head = storage.read_head(obj.bucket, obj.name, 16)
    except GcsNotFound as exc:
        raise ObjectGone(obj.name) from exc
    if any(head.startswith(m) for m in MAGIC[content_type]):
        return None
    return f"content_not_{content_type.split('/')[1]}: the file does not start like a {content_type} file"


def delete_quietly(obj: StorageObject) -> None:
    """Deletes the refused object (that generation only). A 403 (the bucket's retention policy, or
    no delete permission) is logged and accepted: the document is refused either way."""
    from google.api_core.exceptions import Forbidden as GcsForbidden

    try:
        storage.delete_object(obj.bucket, obj.name, generation=obj.generation)
    except GcsForbidden as exc:
        log.warning(
            "kyc object %s could not be deleted: %s",
            obj.name,
            exc,
            extra={"event": "kyc_object_delete_refused", "object": obj.name},
        )


def _event_values(obj: StorageObject) -> dict[str, Any]:
    return {
        "generation": obj.generation,
        "content_type": obj.content_type,
        "size": obj.size,
        "md5_hash": obj.md5_hash,
        "crc32c": obj.crc32c,
    }


def mark_rejected(conn: Conn, doc: dict[str, Any], obj: StorageObject, reason: str) -> bool:
    """Refuses a document for what arrived (``flows.record_upload`` deletes the object after the commit);
    False when a redelivery finds it refused already."""
    conn.one(q.LOCK_USER, user_id=doc["user_id"])
    return conn.one(q.MARK_REJECTED, id=doc["id"], reason=reason, **_event_values(obj)) is not None


def mark_uploaded(conn: Conn, doc: dict[str, Any], obj: StorageObject) -> bool:
    """Records the checked upload and moves the user to review; False when a redelivery finds it done."""
    conn.one(q.LOCK_USER, user_id=doc["user_id"])
    if conn.one(q.MARK_UPLOADED, id=doc["id"], **_event_values(obj)) is None:
        return False
    conn.one(q.SET_IN_REVIEW, user_id=doc["user_id"])
    return True


def document_for_object(conn: Conn, obj: StorageObject) -> dict[str, Any] | None:
    """The document a stored object belongs to, or None (not one of ours)."""
    return conn.one(q.DOCUMENT_BY_OBJECT, bucket=obj.bucket, object_name=obj.name)


def document_location(conn: Conn, document_id: str) -> dict[str, Any]:
    """Where a document's object is (bucket, object_name); 404 for an unknown document."""
    doc = conn.one(q.DOCUMENT_LOCATION, id=_uuid(document_id, "document", codes.DOCUMENT_NOT_FOUND))
    if doc is None:
        raise NotFound("no such document", code=codes.DOCUMENT_NOT_FOUND)
    return doc


def awaiting_uploads(conn: Conn, *, min_age_s: int, limit: int) -> list[str]:
    """The documents still awaiting upload ``min_age_s`` after their URL was issued (oldest first)."""
    return [r["id"] for r in conn.all(q.AWAITING_UPLOADS, min_age_s=min_age_s, limit=limit)]


# --- compliance (called by the admin function) -----------------------------------------------------
def review_queue(conn: Conn, limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """Users waiting for a KYC decision, longest-waiting first: ``{"items": [...], "next_cursor"}``.

    Each item: user_id, email, display_name, in_review_since, documents (uploaded and not yet reviewed).
    """
    limit = max(1, min(int(limit), 200))
    if cursor:
        after_at, after_id = decode_cursor("kyc_review_queue", cursor)
        rows = conn.all(q.REVIEW_QUEUE_AFTER, after_at=after_at, after_id=after_id, limit=limit + 1)
    else:
        rows = conn.all(q.REVIEW_QUEUE_FIRST, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "items": rows,
        "next_cursor": encode_cursor("kyc_review_queue", rows[-1]["in_review_since"], rows[-1]["user_id"]) if more and rows else None,
    }


def documents_for_review(conn: Conn, user_id: str) -> list[dict[str, Any]]:
    """The user's received documents, newest first; uploaded ones carry a 5-minute signed download URL.

    Each item: id, kind, content_type, size_bytes, status ('uploaded' | 'rejected'), md5_hash,
    rejection_reason, reviewed (bool), created_at, uploaded_at, download_url (None unless uploaded),
    download_expires_at.
    """
    user_id = _uuid(user_id, "user", codes.USER_NOT_FOUND)
    rows = conn.all(q.DOCUMENTS_FOR_REVIEW, user_id=user_id)
    out: list[dict[str, Any]] = []
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=DOWNLOAD_URL_TTL_S)
    for row in rows:
        url = None
        if row["status"] == "uploaded":
            url = storage.signed_download_url(row["bucket"], row["object_name"], DOWNLOAD_URL_TTL_S, response_type=row["content_type"])
        out.append(
            {
                "id": row["id"],
                "kind": row["kind"],
                "content_type": row["content_type"],
                "size_bytes": row["size_bytes"],
                "status": row["status"],
                "md5_hash": row["md5_hash"],
                "rejection_reason": row["rejection_reason"],
                "reviewed": row["review_id"] is not None,
                "created_at": row["created_at"],
                "uploaded_at": row["uploaded_at"],
                "download_url": url,
                "download_expires_at": expires_at if url else None,
            }
        )
    return out


def _clean_reason(reason: Any) -> str:
    if not isinstance(reason, str):
        raise ValidationFailed("a reason is required", code=codes.REASON_REQUIRED)
    text = reason.strip()
    if not text:
        raise ValidationFailed("a reason is required", code=codes.REASON_REQUIRED)
    if len(text) > REASON_MAX:
        raise ValidationFailed(f"the reason must be at most {REASON_MAX} characters", code=codes.REASON_TOO_LONG)
    if any((ord(ch) < 32 and ch not in "\t\n\r") or 0xD800 <= ord(ch) <= 0xDFFF for ch in text):
        raise ValidationFailed("the reason contains characters that are not allowed", code=codes.INVALID_CHARACTERS)
    return text


def decide(conn: Conn, user_id: str, decision: str, reason: str, reviewer_id: str) -> dict[str, Any]:
    """Records a compliance decision on a user in review; returns ``{"before", "after"}`` for the audit log.

    Runs in the caller's transaction when there is one (so the audit entry commits with it), else in
    its own. 422 for a bad decision or reason; 403 when the reviewer is not active compliance/admin
    staff or is the user; 404 for an unknown user; 409 unless the user is 'in_review' (or, for
    'verified', when no document was uploaded).
    """
    if decision not in DECISIONS:
        raise ValidationFailed("decision must be 'verified' or 'rejected'", code=codes.INVALID_DECISION)
    text = _clean_reason(reason)
    user_id = _uuid(user_id, "user", codes.USER_NOT_FOUND)
    try:
        reviewer_id = str(uuid.UUID(str(reviewer_id)))
    except ValueError as exc:
        raise Forbidden("unknown reviewer", code=codes.REVIEWER_FORBIDDEN) from exc
    if reviewer_id == user_id:
        raise Forbidden("nobody may decide on their own identity", code=codes.OWN_KYC_DECISION)

    def run(c: Conn) -> dict[str, Any]:
        reviewer = c.one(q.REVIEWER, id=reviewer_id)
        if reviewer is None or reviewer["role"] not in REVIEWER_ROLES or reviewer["status"] != "active":
            raise Forbidden("only active compliance staff may decide on KYC", code=codes.REVIEWER_FORBIDDEN)
        user = c.one(q.LOCK_USER, user_id=user_id)
        if user is None:
            raise NotFound("no such user", code=codes.USER_NOT_FOUND)
        before = user["kyc_status"]
        if before != "in_review":
            raise Conflict(
                f"KYC can only be decided while in review (it is {before})", code=codes.KYC_NOT_IN_REVIEW, details={"kyc_status": before}
            )
        review = c.one(q.INSERT_REVIEW, user_id=user_id, decision=decision, reason=text, reviewer_id=reviewer_id)
        assert review is not None
        documents = [r["id"] for r in c.all(q.ATTACH_REVIEW, review_id=review["id"], user_id=user_id)]
        if decision == "verified" and not documents:
            raise Conflict("there is no uploaded document to verify against", code=codes.KYC_NO_DOCUMENTS)
        c.execute(q.SET_DECISION, user_id=user_id, decision=decision)
        notify(c, user_id, "kyc_decided", {"decision": decision, "reason": text if decision == "rejected" else None})
        if decision == "verified":  # verified KYC may be what the user's referral was waiting for
            bonuses.try_qualify(c, user_id)
        log.info(
            "kyc decision %s for user %s",
            decision,
            user_id,
            extra={"event": "kyc_decided", "decision": decision, "review_id": review["id"], "documents": len(documents)},
        )
        return {
            "before": {"kyc_status": before},
            "after": {
                "kyc_status": decision,
                "review_id": review["id"],
                "decision": decision,
                "reason": text,
                "reviewer_id": reviewer_id,
                "decided_at": review["decided_at"],
                "document_ids": documents,
            },
        }

    with conn.atomic():
        return run(conn)
