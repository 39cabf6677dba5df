"""Users' privacy rights: a data export of everything we hold about them, and erasure of their personal data.

Exports. ``request_export`` records a ``data_exports`` row (one queued export per user at a time)
and publishes ``{"export_id", "user_id"}`` to the topic ``privacy-exports``; ``export_user_data``
(functions/privacy/events.py) builds the bundle. When Pub/Sub is disabled (local runs and tests)
the export is built inline, in the request. When publishing fails the export stays queued and
``python main.py process-exports`` builds every queued export. The bundle is one JSON document in
the private exports bucket under a random name; ``get_export`` hands its owner a 15-minute signed
download URL for 7 days.

Erasure. ``erase`` (re-authenticated) pseudonymises the account in one transaction: personal data
goes, the financial record (ledger, payouts, KYC decisions) stays under the account's UUID.
What is kept and why: docs/privacy.md.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from functions.auth import service as auth
from functions.auth.service import new_referral_code
from functions.privacy import queries as q
from shared import audit, ratelimit, storage
from shared import error_codes as codes
from shared.db import Conn
from shared.errors import Conflict, NotFound, PermanentEventError, ServiceUnavailable
from shared.ids import uuid_or
from shared.logs import get_logger
from shared.models import rfc3339
from shared.render import dumps

log = get_logger(__name__)

TOPIC = "privacy-exports"
FORMAT = "earnpay-export/1"
DOWNLOAD_URL_TTL_S = 15 * 60
KEEP_DAYS = 7  # matches the exports bucket's lifecycle rule
MAX_ATTEMPTS = 5
EXPORTS_PER_DAY = 5
REAUTH_PER_15_MIN = 5
# never a valid argon2 hash: verify() fails for every password
UNUSABLE_PASSWORD_HASH = "!erased"  # noqa: S105  # not a password: a marker no hash matches
IN_FLIGHT_PAYOUT_STATES = ("requested", "approved", "submitted")


def _uuid_or_404(value: str) -> str:
    return uuid_or(value, NotFound("no such export", code=codes.EXPORT_NOT_FOUND))


def pseudonymous_email(user_id: str) -> str:
    return f"erased-{user_id}@erased.invalid"


def view(row: dict[str, Any]) -> dict[str, Any]:
    """An export as its owner sees it; a ready, unexpired one carries a short-lived download URL."""
    status = row["status"]
    if status == "ready" and row["expired"]:
        status = "expired"
    out: dict[str, Any] = {
        "id": row["id"],
        "status": status,
        "requested_at": row["requested_at"],
        "ready_at": row["ready_at"],
        "expires_at": row["expires_at"],
        "size_bytes": row["size_bytes"] if status == "ready" else None,
        "download_url": None,
        "download_expires_at": None,
    }
    if status == "ready":
        out["download_url"] = storage.signed_download_url(
            row["bucket"],
            row["object_name"],
            DOWNLOAD_URL_TTL_S,
            response_type="application/json",
            response_disposition='attachment; filename="earnpay-data-export.json"',
        )
        out["download_expires_at"] = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=DOWNLOAD_URL_TTL_S)
    return out


# --- exports ---------------------------------------------------------------------------------------
def queue_export(conn: Conn, user_id: str) -> tuple[dict[str, Any], bool]:
    """Queues an export (or finds the one already queued); returns (row, created). ``flows.request_export``
    publishes a new one after the commit."""
    row = conn.one(q.INSERT_EXPORT, user_id=user_id)
    created = row is not None
    if created:
        ratelimit.hit(conn, f"privacy-export:{user_id}", limit=EXPORTS_PER_DAY, window_s=86_400, message="too many exports today")
    else:
        row = conn.one(q.QUEUED_EXPORT, user_id=user_id)
        if row is None:  # finished between our two statements: ask again
            raise Conflict("an export was just completed; ask again", code=codes.EXPORT_IN_PROGRESS)
    assert row is not None
    return row, created


def export_row(conn: Conn, export_id: str) -> dict[str, Any] | None:
    """An export's row (anyone's: for the workflows), or None."""
    return conn.one(q.EXPORT_BY_ID, id=export_id)


def get_export(conn: Conn, user_id: str, export_id: str) -> dict[str, Any]:
    """The caller's own export (404 for anyone else's, indistinguishable from a missing one)."""
    row = conn.one(q.USER_EXPORT, id=_uuid_or_404(export_id), user_id=user_id)
    if row is None:
        raise NotFound("no such export", code=codes.EXPORT_NOT_FOUND)
    return view(row)


# PostgreSQL writes timestamptz in JSON as 2026-01-02T03:04:05.123+00:00 and puts spaces after ':'
# and ','; the export is re-serialised in the API's one style (compact, RFC 3339 UTC with Z).
_PG_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,6})?[+-]\d\d(?::\d\d)?$")


def _restyled(key: str, value: Any) -> Any:
    if isinstance(value, str) and key.endswith("_at") and _PG_TIMESTAMP.match(value):
        return rfc3339(dt.datetime.fromisoformat(value))
    if isinstance(value, dict):
        return {k: _restyled(k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restyled(key, v) for v in value]
    return value


def restyle(section: str) -> str:
    """One export section (JSON text from PostgreSQL) in the API's JSON style (timestamps only in ``*_at`` fields)."""
    return dumps(_restyled("", json.loads(section)))


def build_bundle(conn: Conn, user_id: str, export_id: str) -> str:
    """The export document (JSON text): every section of queries.EXPORT_SECTIONS, from one snapshot
    (the caller's transaction, fresh: its first statement makes it a read-only repeatable read)."""
    parts = []
    conn.script(q.SNAPSHOT)
    generated_at = dt.datetime.now(dt.UTC)
    for table, query in q.EXPORT_SECTIONS.items():
        parts.append(f"{json.dumps(table)}:{restyle(conn.value(query, user_id=user_id))}")
    head = dumps(
        {
            "format": FORMAT,
            "export_id": export_id,
            "user_id": user_id,
            "generated_at": generated_at,
            "about": (
                "Everything EarnPay holds about this account, one section per database table. Amounts are integer "
                "micro-dollars (1 USD = 1,000,000) unless the field says cents. Session tokens, password hashes and "
                "encrypted payout details are never exported; payout methods appear masked."
            ),
        }
    )
    return head[:-1] + ',"data":{' + ",".join(parts) + "}}"


def export_to_build(conn: Conn, export_id: str, user_id: str | None = None) -> dict[str, Any]:
    """The export a message asks for; PermanentEventError for one that does not exist or belongs to
    someone else (the message is dead-lettered)."""
    row = export_row(conn, export_id)
    if row is None or (user_id is not None and row["user_id"] != user_id):
        raise PermanentEventError(f"no export {export_id} for that user", code=codes.UNKNOWN_EXPORT)
    return row


def mark_attempt_failed(conn: Conn, export_id: str, exc: Exception) -> str:
    """Counts a failed build; returns the export's status ("failed" once ``MAX_ATTEMPTS`` are spent)."""
    status = conn.value(q.MARK_ATTEMPT_FAILED, id=export_id, error=type(exc).__name__[:200], max_attempts=MAX_ATTEMPTS)
    log.error("export %s failed: %s", export_id, exc, extra={"event": "privacy_export_failed", "export_id": export_id})
    return str(status)


def mark_ready(conn: Conn, export_id: str, bucket: str, object_name: str, size_bytes: int) -> bool:
    """Records the stored export; False when a duplicate delivery finished it, or the account was erased meanwhile."""
    marked = conn.value(q.MARK_READY, id=export_id, bucket=bucket, object_name=object_name, size_bytes=size_bytes, keep_days=KEEP_DAYS)
    return marked is not None


def pending_exports(conn: Conn, *, limit: int, min_age_s: int) -> list[str]:
    """The exports still queued ``min_age_s`` after they were asked for (a lost message, Pub/Sub down)."""
    return [r["id"] for r in conn.all(q.PENDING_EXPORTS, min_age_s=min_age_s, limit=limit)]


# --- erasure ---------------------------------------------------------------------------------------
def reauthenticate(conn: Conn, user_id: str, password: str) -> None:
    """401 unless ``password`` is the user's (5 tries per 15 minutes, then 429); without a transaction
    (``db.connection()``), so a wrong try counts."""
    ratelimit.hit(conn, f"reauth:{user_id}", limit=REAUTH_PER_15_MIN, window_s=900, message="too many password attempts")
    auth.verify_password(conn, user_id, password)


def erase(conn: Conn, user_id: str, *, request_id: str | None = None) -> dict[str, Any]:
    """Erases the caller's personal data (re-authenticated before: ``flows.erase``) in the caller's
    transaction; keeps the financial record pseudonymous.

    409 ``payouts_in_flight`` while a payout is requested, approved or submitted; 409 ``staff_account``
    for staff (an admin demotes them first).
    """
    user = conn.one(q.LOCK_USER, user_id=user_id)
    if user is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    if user["status"] == "erased":
        raise Conflict("this account is already erased", code=codes.ALREADY_ERASED)
    if user["role"] != "user":
        raise Conflict("staff accounts cannot be erased; ask an admin to remove your role first", code=codes.STAFF_ACCOUNT)
    in_flight = conn.value(q.PAYOUTS_IN_FLIGHT, user_id=user_id)
    if in_flight:
        raise Conflict(
            "a payout is on its way; erase once it is paid, or cancel it first",
            code=codes.PAYOUTS_IN_FLIGHT,
            details={"payouts_in_flight": in_flight},
        )
    pseudonym = pseudonymous_email(user_id)
    erased_at = conn.value(
        q.ERASE_USER,
        user_id=user_id,
        email=pseudonym,
        password_hash=UNUSABLE_PASSWORD_HASH,
        referral_code=new_referral_code(),
    )
    counts = {
        "sessions": conn.execute(q.ERASE_SESSIONS, user_id=user_id),
        "login_attempts": conn.execute(q.ERASE_LOGIN_ATTEMPTS, user_id=user_id, pseudonym=pseudonym, email=user["email"]),
        "idempotency_keys": conn.execute(q.DELETE_IDEMPOTENCY_KEYS, user_id=user_id),
        "payout_methods": conn.execute(q.ERASE_PAYOUT_METHODS, user_id=user_id),
        "payout_requests": conn.execute(q.ERASE_PAYOUT_REQUESTS, user_id=user_id),
        "notifications": conn.execute(q.DELETE_NOTIFICATIONS, user_id=user_id),
        "account_tokens": conn.execute(q.DELETE_ACCOUNT_TOKENS, user_id=user_id),
        "known_devices": conn.execute(q.DELETE_KNOWN_DEVICES, user_id=user_id),
        "mfa": conn.execute(q.DELETE_RECOVERY_CODES, user_id=user_id) + conn.execute(q.DELETE_MFA, user_id=user_id),
        "risk_observations": conn.execute(q.ERASE_RISK_OBSERVATIONS, user_id=user_id),
    }
    kyc_objects = conn.all(q.ERASE_KYC_DOCUMENTS, user_id=user_id)
    export_objects = [o for o in conn.all(q.ERASE_EXPORTS, user_id=user_id) if o["object_name"]]
    counts["kyc_documents"] = len(kyc_objects)
    counts["exports"] = len(export_objects)
    audit.record(
        conn,
        actor_id=user_id,
        actor_role="user",
        action="privacy.erase",
        target_type="user",
        target_id=user_id,
        before={"status": user["status"]},
        after={"status": "erased", **counts},
        request_id=request_id,
    )
    # Last, still inside the transaction: if storage fails the erasure rolls back and the user
    # may retry (deleting an object twice is harmless); once it commits, nothing is left behind.
    try:
        for obj in [*kyc_objects, *export_objects]:
            storage.delete_object(obj["bucket"], obj["object_name"])
    except Exception as exc:
        log.exception("erasure could not delete stored files", extra={"event": "erasure_storage_failed", "user_id": user_id})
        raise ServiceUnavailable(
            "file storage is unavailable; nothing was erased, try again shortly", code=codes.STORAGE_UNAVAILABLE
        ) from exc
    return {"user_id": user_id, "status": "erased", "erased_at": erased_at, "removed": counts}
