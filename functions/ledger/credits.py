"""Credit requests from trusted publishers (Pub/Sub topic ``earnings-credit-requests``), applied exactly once.

A request is a JSON object (see ``CreditRequest``); the publisher's ``request_id`` is unique per
``source``. Exactly-once rests on two things in PostgreSQL, both written in one transaction:

  * the ledger entry's idempotency key ``credit:<source>:<request_id>`` (a redelivery, even a
    concurrent one, finds the entry already posted: ``ledger_post`` serialises on the user's
    balance row);
  * the ``credit_requests`` row keyed by (source, request_id) with the user, type, amount, entry id
    and a SHA-256 of the request's money-relevant fields: the same request id re-sent for another
    user (a different ledger key space) or another amount is recognised as a conflicting
    duplicate and refused (``PermanentEventError``, dead-lettered), never applied.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from functions.ledger import service as ledger
from shared import error_codes as codes
from shared.config import get_settings
from shared.db import Conn, Query
from shared.errors import NotFound, PermanentEventError, ValidationFailed

# Types a publisher may credit. Login and streak bonuses, referral commissions and payout
# holds/releases are posted only by our own code paths (with their own keys and rules), so
# outside publishers can neither fake them nor move money out: every request is a credit (> 0).
CREDIT_TYPES = ("video_reward", "referral_bonus", "adjustment")
MAX_METADATA_BYTES = 4096


def max_credit_micros() -> int:
    """A guard against fat fingers: the largest single credit a publisher may request ($1,000 unless
    CREDIT_REQUEST_MAX_MICROS says otherwise; never above the ledger's own limit). Read per request."""
    return min(get_settings().credit_request_max_micros, ledger.MAX_ENTRY)


INSERT_REQUEST = Query(
    "credit_request_insert",
    """INSERT INTO credit_requests (source, request_id, user_id, type, amount, request_hash, entry_id, message_id)
       VALUES (:source, :request_id, CAST(:user_id AS uuid), :type, :amount, :request_hash, :entry_id, :message_id)
       ON CONFLICT (source, request_id) DO NOTHING
       RETURNING entry_id""",
)

REQUEST_BY_ID = Query(
    "credit_request_by_id",
    """SELECT user_id::text AS user_id, type, amount, request_hash, entry_id, created_at
         FROM credit_requests WHERE source = :source AND request_id = :request_id""",
)


class CreditRequest(BaseModel):
    """One credit request as published (JSON, strict types, unknown fields refused)."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    request_id: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^:\s]+$")]
    user_id: uuid.UUID
    amount_micros: Annotated[int, Field(gt=0)]
    type: Literal["video_reward", "referral_bonus", "adjustment"]
    source: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.:-]{0,63}$")]
    reference: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    metadata: dict[str, Any] | None = None

    @field_validator("amount_micros")
    @classmethod
    def _not_too_large(cls, value: int) -> int:
        limit = max_credit_micros()
        if value > limit:
            raise ValueError(f"amount_micros must be at most {limit}")
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(json.dumps(value, separators=(",", ":"))) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata must serialise to at most {MAX_METADATA_BYTES} bytes")
        return value

    @property
    def idempotency_key(self) -> str:
        return f"credit:{self.source}:{self.request_id}"

    def fingerprint(self) -> bytes:
        """SHA-256 of the fields that decide what money moves (metadata is informational and excluded)."""
        canonical = json.dumps(
            [self.source, self.request_id, str(self.user_id), self.type, self.amount_micros, self.reference], separators=(",", ":")
        )
        return hashlib.sha256(canonical.encode()).digest()


@dataclass(frozen=True)
class Applied:
    entry_id: int
    duplicate: bool


def parse(raw: str) -> CreditRequest:
    """Validates a request's JSON text; a bad request is permanent (dead-lettered)."""
    try:
        return CreditRequest.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors(include_url=False))
        raise PermanentEventError(f"invalid credit request: {problems}"[:2000], code=codes.INVALID_CREDIT_REQUEST) from exc


def apply(conn: Conn, req: CreditRequest, *, message_id: str | None = None) -> Applied:
    """Posts the credit once (call inside a transaction); a redelivery returns the first entry as a duplicate."""
    user_id = str(req.user_id)
    try:
        posted = ledger.post(
            conn,
            user_id=user_id,
            type=req.type,
            amount=req.amount_micros,
            idempotency_key=req.idempotency_key,
            source=req.source,
            reference=req.reference,
            metadata={"request_id": req.request_id, **({"publisher": req.metadata} if req.metadata else {})},
        )
    except NotFound as exc:
        raise PermanentEventError(f"unknown user {user_id}", code=codes.UNKNOWN_USER) from exc
    except ledger.IdempotencyConflict as exc:
        raise PermanentEventError(
            f"request {req.source}/{req.request_id} was already applied with a different type or amount", code=codes.CONFLICTING_DUPLICATE
        ) from exc
    except ValidationFailed as exc:
        raise PermanentEventError(f"the ledger refused the credit: {exc.message}", code=exc.code) from exc
    fingerprint = req.fingerprint()
    inserted = conn.value(
        INSERT_REQUEST,
        source=req.source,
        request_id=req.request_id,
        user_id=user_id,
        type=req.type,
        amount=req.amount_micros,
        request_hash=fingerprint,
        entry_id=posted.entry_id,
        message_id=message_id,
    )
    if inserted is not None:
        return Applied(posted.entry_id, duplicate=False)
    # Applied before (perhaps concurrently, by a delivery that committed while we waited on its row).
    first = conn.one(REQUEST_BY_ID, source=req.source, request_id=req.request_id)
    assert first is not None
    if bytes(first["request_hash"]) != fingerprint:
        # Raising rolls back whatever this transaction posted (for another user, a fresh entry).
        raise PermanentEventError(
            f"request {req.source}/{req.request_id} was already applied to user {first['user_id']} for {first['amount']} micros "
            f"({first['type']}); this delivery differs (user {user_id}, {req.amount_micros} micros, {req.type})",
            code=codes.CONFLICTING_DUPLICATE,
        )
    return Applied(int(first["entry_id"]), duplicate=True)
