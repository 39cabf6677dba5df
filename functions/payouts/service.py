"""Payout methods and payout requests: the domain rules (routes and the admin function call these).

Money: a request holds ``amount_cents * 10,000`` micro-dollars with a ``payout_hold`` ledger entry in
the same transaction that inserts it; cancel, reject and a provider failure release it with a
``payout_release`` entry keyed on the payout id, so no path can release twice. Each status change is a
conditional UPDATE on the state it leaves (and the database refuses illegal transitions), so racing
changes (a user's cancel against a staff approval) leave exactly one outcome.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from functions.ledger import service as ledger
from functions.payouts import queries as q
from functions.payouts.models import STATES, MethodCreateBody, PayoutCreateBody
from functions.risk import queries as risk_q
from functions.risk import signals
from shared import error_codes as codes
from shared.config import Settings, get_settings
from shared.crypto import encrypt_json, mask_email
from shared.db import Conn
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from shared.ids import uuid_or
from shared.pagination import decode_cursor, encode_cursor

CURRENCY = "USD"
SOURCE = "payouts"
# uuid5 namespace of payout ids derived from a client's Idempotency-Key.
_PAYOUT_ID_NAMESPACE = uuid.UUID("1c7f6a38-55b0-4c47-9f47-43b6c9a0e2d1")


class PayoutNotFound(NotFound):
    code = codes.PAYOUT_NOT_FOUND


def method_aad(user_id: str) -> str:
    """The associated data binding a method's envelope to its owner."""
    return f"payout_method:{user_id}"


def payout_id_for(user_id: str, idempotency_key: str | None) -> str:
    """A deterministic id for a keyed request (a retry after a crash finds the first row); random otherwise."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_PAYOUT_ID_NAMESPACE, f"{user_id}\n{idempotency_key}"))


def _uuid_or_404(value: str, error: type[NotFound] = PayoutNotFound) -> str:
    return uuid_or(value, error("no such payout" if error is PayoutNotFound else "no such payout method"))


def format_cents(cents: int) -> str:
    return ledger.format_micros(cents * ledger.MICROS_PER_CENT)


def _amount(row_or_cents: dict[str, Any] | int) -> dict[str, Any]:
    """A payout's amount (requested in whole cents; the row's currency is always USD) in the money shape."""
    cents = row_or_cents["amount_cents"] if isinstance(row_or_cents, dict) else row_or_cents
    return ledger.money(cents * ledger.MICROS_PER_CENT)


# --- payout methods ----------------------------------------------------------------------------------
class MethodNotFound(NotFound):
    code = codes.PAYOUT_METHOD_NOT_FOUND


def method_label(body: MethodCreateBody) -> str:
    """What lists show: never the full email or account number."""
    assert body.email is not None  # the only type accepted (models.MethodCreateBody)
    return f"PayPal {mask_email(body.email)}"


def _method_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "type": row["type"], "label": row["label"], "is_default": row["is_default"], "created_at": row["created_at"]}


def encrypt_method(user_id: str, body: MethodCreateBody) -> dict[str, Any]:
    """The method's details as an envelope bound to its owner (with Cloud KMS a network call: ``flows``
    makes it before the transaction, never holding locks)."""
    return encrypt_json(body.details(), aad=method_aad(user_id))


def add_method(
    conn: Conn, user_id: str, body: MethodCreateBody, envelope: dict[str, Any], settings: Settings | None = None
) -> dict[str, Any]:
    """Registers a payout method (re-authenticated and encrypted before: ``flows.add_method``); the first
    one (or ``make_default``) becomes the default."""
    settings = settings or get_settings()
    conn.value(q.LOCK_USER_METHODS, user_id=user_id)
    count = int(conn.value(q.COUNT_METHODS, user_id=user_id) or 0)
    if count >= settings.payout_max_methods:
        raise Conflict(
            f"you can have at most {settings.payout_max_methods} payout methods",
            code=codes.TOO_MANY_PAYOUT_METHODS,
            details={"max_methods": settings.payout_max_methods},
        )
    make_default = body.make_default or count == 0
    if make_default:
        conn.execute(q.CLEAR_DEFAULT_METHOD, user_id=user_id)
    row = conn.one(
        q.INSERT_METHOD,
        id=str(uuid.uuid4()),
        user_id=user_id,
        type=body.type,
        label=method_label(body),
        details=json.dumps(envelope, separators=(",", ":")),
        is_default=make_default,
        fingerprint=signals.payout_fingerprint(body.type, body.details()),
    )
    assert row is not None
    return _method_view(row)


def list_methods(conn: Conn, user_id: str) -> dict[str, Any]:
    """The user's methods, masked (reads only the plain label column: nothing is decrypted)."""
    rows = conn.all(q.LIST_METHODS, user_id=user_id)
    return {"items": [_method_view(r) for r in rows], "next_cursor": None}


def set_default_method(conn: Conn, user_id: str, method_id: str) -> dict[str, Any]:
    """Makes one of the user's methods the default."""
    method_id = _uuid_or_404(method_id, MethodNotFound)
    conn.value(q.LOCK_USER_METHODS, user_id=user_id)
    if conn.one(q.GET_METHOD, id=method_id, user_id=user_id) is None:
        raise MethodNotFound("no such payout method")
    conn.execute(q.CLEAR_DEFAULT_METHOD, user_id=user_id)
    row = conn.one(q.SET_DEFAULT_METHOD, id=method_id, user_id=user_id)
    assert row is not None
    return _method_view(row)


def remove_method(conn: Conn, user_id: str, method_id: str) -> dict[str, Any]:
    """Removes one of the user's methods: its encrypted details are destroyed, the masked label stays
    on the payouts that used it. Refused while a payout to it is in flight (the batch still needs the
    details). If it was the default, the newest remaining method becomes the default."""
    method_id = _uuid_or_404(method_id, MethodNotFound)
    # the same lock as adding, choosing the default and requesting a payout: no request can pick
    # this method between the in-flight check and the removal
    conn.value(q.LOCK_USER_METHODS, user_id=user_id)
    method = conn.one(q.GET_METHOD, id=method_id, user_id=user_id)
    if method is None:
        raise MethodNotFound("no such payout method")
    in_flight = int(conn.value(q.METHOD_PAYOUTS_IN_FLIGHT, id=method_id, user_id=user_id) or 0)
    if in_flight:
        raise Conflict(
            "a payout to this method is still in progress: cancel it, or wait until it is paid or fails",
            code=codes.PAYOUT_METHOD_IN_USE,
            details={"payouts_in_flight": in_flight},
        )
    removed_at = conn.value(q.REMOVE_METHOD, id=method_id, user_id=user_id)
    if method["is_default"]:
        newest = conn.one(q.NEWEST_METHOD, user_id=user_id)
        default = conn.one(q.SET_DEFAULT_METHOD, id=newest["id"], user_id=user_id) if newest else None
    else:
        default = conn.one(q.DEFAULT_METHOD, user_id=user_id)
    return {"id": method_id, "removed_at": removed_at, "default_method": _method_view(default) if default else None}


# --- views -------------------------------------------------------------------------------------------
def _actor_kind(actor: str, user_id: str) -> str:
    if actor == "system":
        return "system"
    return "user" if actor == user_id else "staff"


def public_view(row: dict[str, Any], events: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A payout as its owner sees it (no staff ids, no provider internals)."""
    view: dict[str, Any] = {
        "id": row["id"],
        "status": row["status"],
        "amount": _amount(row),
        "method": {"id": row["method_id"], "type": row["method_type"], "label": row["method_label"]},
        "requested_at": row["requested_at"],
        "decided_at": row["decided_at"],
        "cancelled_at": row["cancelled_at"],
        "submitted_at": row["submitted_at"],
        "completed_at": row["completed_at"],
        "updated_at": row["updated_at"],
        "reject_reason": row["reject_reason"],
        "failure_code": row["failure_code"],
    }
    if events is not None:
        view["events"] = [
            {"from": e["from_state"], "to": e["to_state"], "by": _actor_kind(e["actor"], row["user_id"]), "at": e["created_at"]}
            for e in events
            if e["from_state"] != e["to_state"]  # re-claims are operational detail
        ]
    return view


def staff_view(row: dict[str, Any]) -> dict[str, Any]:
    """A payout as finance staff see it (and as the audit log's before/after record it)."""
    view = dict(row)
    view.pop("currency", None)
    view["amount"] = _amount(view.pop("amount_cents"))
    return view


# --- cursors (shared.pagination; the key is the last row's (requested_at, id)) -----------------------
USER_LIST, REVIEW_LIST = "payouts", "payout_review"


def _decode_cursor(kind: str, cursor: str | None) -> tuple[str | None, str | None]:
    if cursor is None:
        return None, None
    key = decode_cursor(cursor, kind, {"at": str, "id": str})
    try:
        datetime.fromisoformat(key["at"])
        return key["at"], str(uuid.UUID(key["id"]))
    except ValueError as exc:
        raise ValidationFailed("the cursor is not valid for this list; start again without it", code=codes.INVALID_CURSOR) from exc


def _page(kind: str, rows: list[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(kind, {"at": rows[-1]["requested_at"].isoformat(), "id": rows[-1]["id"]}) if more and rows else None
    return rows, cursor


# --- payout requests ---------------------------------------------------------------------------------
def _hold(conn: Conn, row: dict[str, Any]) -> None:
    ledger.post(
        conn,
        user_id=row["user_id"],
        type="payout_hold",
        amount=-row["amount_cents"] * ledger.MICROS_PER_CENT,
        idempotency_key=f"payout_hold:{row['id']}",
        source=SOURCE,
        reference=row["id"],
        metadata={"method_type": row["method_type"]},
    )


def release(conn: Conn, row: dict[str, Any], why: str) -> None:
    """Returns a payout's held money to the available balance (at most once per payout, by its key)."""
    ledger.post(
        conn,
        user_id=row["user_id"],
        type="payout_release",
        amount=row["amount_cents"] * ledger.MICROS_PER_CENT,
        idempotency_key=f"payout_release:{row['id']}",
        source=SOURCE,
        reference=row["id"],
        metadata={"reason": why},
    )


def _check_eligible(conn: Conn, user_id: str) -> None:
    user = conn.one(q.USER_ELIGIBILITY, user_id=user_id)
    if user is None or user["status"] != "active":
        raise Forbidden("your account is not active", code=codes.ACCOUNT_NOT_ACTIVE)
    if not user["email_verified"]:
        raise Forbidden("confirm your email address (the link we sent you) before asking for a payout", code=codes.EMAIL_UNVERIFIED)
    if user["risk_state"] in ("review", "suspended", "banned"):
        raise Forbidden(
            "cashouts are paused while our team reviews this account; you can keep using EarnPay meanwhile",
            code=codes.ACCOUNT_UNDER_REVIEW,
            details={"risk_state": user["risk_state"]},
        )
    if user["kyc_status"] != "verified":
        raise Forbidden(
            "verify your identity (KYC) before asking for a payout", code=codes.KYC_REQUIRED, details={"kyc_status": user["kyc_status"]}
        )


def _same_request(row: dict[str, Any], body: PayoutCreateBody) -> None:
    if row["amount_cents"] != body.amount_cents or (body.method_id is not None and row["method_id"] != str(uuid.UUID(body.method_id))):
        raise ValidationFailed("this Idempotency-Key was used with a different request", code=codes.IDEMPOTENCY_KEY_REUSED)


def check_amount(body: PayoutCreateBody, settings: Settings) -> None:
    """422 below the minimum payout (checked before anything else)."""
    if body.amount_cents < settings.payout_minimum_cents:
        raise ValidationFailed(
            f"the minimum payout is {format_cents(settings.payout_minimum_cents)}",
            code=codes.AMOUNT_BELOW_MINIMUM,
            details={"minimum": _amount(settings.payout_minimum_cents)},
        )


def existing_request(conn: Conn, user_id: str, body: PayoutCreateBody, idempotency_key: str | None) -> dict[str, Any] | None:
    """The payout a keyed request already made (a retry after a crash between our commit and the HTTP
    answer), as its owner sees it; 422 when the key came with another request; None otherwise."""
    if idempotency_key is None:
        return None
    existing = conn.one(q.GET_USER_PAYOUT, id=payout_id_for(user_id, idempotency_key), user_id=user_id)
    if existing is None:
        return None
    _same_request(existing, body)
    return public_view(existing)


def request_payout(
    conn: Conn,
    user_id: str,
    body: PayoutCreateBody,
    idempotency_key: str | None = None,
    client: tuple[str, str | None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Creates a payout request and its ledger hold in the caller's transaction; returns (payout, created).

    With an Idempotency-Key the payout id is derived from it, so a retry (even after a crash between our
    commit and the HTTP answer) finds the first request instead of holding twice. ``flows.request_payout``
    checks the amount, a retry and the password first.
    """
    payout_id = payout_id_for(user_id, idempotency_key)
    _check_eligible(conn, user_id)
    conn.value(q.LOCK_USER_METHODS, user_id=user_id)  # a removal of the method waits for this request, or it for the removal
    if body.method_id is not None:
        method = conn.one(q.GET_METHOD, id=str(uuid.UUID(body.method_id)), user_id=user_id)
        if method is None:
            raise MethodNotFound("no such payout method")
    else:
        method = conn.one(q.DEFAULT_METHOD, user_id=user_id)
        if method is None:
            raise ValidationFailed("add a payout method first (POST /payouts/methods)", code=codes.NO_PAYOUT_METHOD)
    if method["type"] != "paypal":  # a bank account added before they were withdrawn (migration 0090)
        raise Conflict(
            "this payout method is a bank account, which EarnPay cannot pay: add a PayPal method", code=codes.PAYOUT_METHOD_UNSUPPORTED
        )
    row = conn.one(
        q.INSERT_PAYOUT,
        id=payout_id,
        user_id=user_id,
        actor=user_id,
        method_id=method["id"],
        method_type=method["type"],
        method_label=method["label"],
        amount_cents=body.amount_cents,
        currency=CURRENCY,
        idempotency_key=idempotency_key,
    )
    if row is None:  # a concurrent request with the same key committed first
        existing = conn.one(q.GET_USER_PAYOUT, id=payout_id, user_id=user_id)
        if existing is None:
            raise Conflict("a request with this Idempotency-Key is still in progress", code=codes.REQUEST_IN_PROGRESS)
        _same_request(existing, body)
        return public_view(existing), False
    _hold(conn, row)
    if client is not None:  # (address, install id) of the caller: a trust-and-safety signal
        signals.observe(conn, user_id, "payout_request", client[0], client[1])
    return public_view(row), True


def list_payouts(conn: Conn, user_id: str, *, limit: int = 50, cursor: str | None = None, status: str | None = None) -> dict[str, Any]:
    """The user's payouts, newest first, keyset-paginated."""
    after_at, after_id = _decode_cursor(USER_LIST, cursor)
    rows = conn.all(q.LIST_USER_PAYOUTS, user_id=user_id, status=status, after_at=after_at, after_id=after_id, limit=limit + 1)
    rows, next_cursor = _page(USER_LIST, rows, limit)
    return {"items": [public_view(r) for r in rows], "next_cursor": next_cursor}


def get_payout(conn: Conn, user_id: str, payout_id: str) -> dict[str, Any]:
    """One of the user's payouts with its history (404 for anyone else's)."""
    payout_id = _uuid_or_404(payout_id)
    row = conn.one(q.GET_USER_PAYOUT, id=payout_id, user_id=user_id)
    if row is None:
        raise PayoutNotFound("no such payout")
    events = conn.all(q.PAYOUT_EVENTS, id=payout_id)
    return public_view(row, events)


def cancel_payout(conn: Conn, user_id: str, payout_id: str) -> dict[str, Any]:
    """Cancels the user's payout while it awaits approval and releases the hold (repeating it is harmless)."""
    payout_id = _uuid_or_404(payout_id)
    row = conn.one(q.CANCEL_PAYOUT, id=payout_id, user_id=user_id, actor=user_id)
    if row is None:
        current = conn.one(q.GET_USER_PAYOUT, id=payout_id, user_id=user_id)
        if current is None:
            raise PayoutNotFound("no such payout")
        if current["status"] == "cancelled":
            return public_view(current)
        raise Conflict(
            f"this payout is {current['status']} and can no longer be cancelled",
            code=codes.PAYOUT_NOT_CANCELLABLE,
            details={"status": current["status"]},
        )
    release(conn, row, "cancelled")
    return public_view(row)


# --- the admin function's API (finance staff) -------------------------------------------------------
def get_for_staff(conn: Conn, payout_id: str) -> dict[str, Any]:
    """Any payout with its full event history."""
    payout_id = _uuid_or_404(payout_id)
    row = conn.one(q.GET_PAYOUT, id=payout_id)
    if row is None:
        raise PayoutNotFound("no such payout")
    view = staff_view(row)
    view["events"] = conn.all(q.PAYOUT_EVENTS, id=payout_id)
    return view


def _lock_requested(conn: Conn, payout_id: str, staff_id: str, verb: str) -> dict[str, Any]:
    before = conn.one(q.LOCK_PAYOUT, id=_uuid_or_404(payout_id))
    if before is None:
        raise PayoutNotFound("no such payout")
    if before["user_id"] == staff_id:
        raise Forbidden(f"staff cannot {verb} their own payout", code=codes.OWN_PAYOUT)
    if before["status"] != "requested":
        raise Conflict(
            f"this payout is {before['status']}; only requested payouts can be {verb}d",
            code=codes.PAYOUT_NOT_PENDING,
            details={"status": before["status"]},
        )
    return before


def approve(conn: Conn, payout_id: str, staff_id: str) -> dict[str, Any]:
    """Approves a requested payout for the next batch; returns ``{"before", "after"}`` for the audit log.

    Runs in the caller's transaction when there is one. 404 unknown, 403 the staff member's own payout,
    409 ``payout_not_pending`` (already decided or cancelled), 409 ``payout_user_not_eligible`` (the
    owner is no longer active and KYC-verified).
    """
    with conn.atomic():
        before = _lock_requested(conn, payout_id, staff_id, "approve")
        try:
            _check_eligible(conn, before["user_id"])
        except Forbidden as exc:
            raise Conflict(f"the payout's owner is not eligible: {exc.message}", code=codes.PAYOUT_USER_NOT_ELIGIBLE) from exc
        after = conn.one(q.APPROVE_PAYOUT, id=before["id"], staff_id=staff_id, actor=staff_id)
        assert after is not None  # we hold the row lock and saw 'requested'
    return {"before": staff_view(before), "after": staff_view(after)}


def reject(conn: Conn, payout_id: str, staff_id: str, reason: str) -> dict[str, Any]:
    """Rejects a requested payout with a reason and releases its hold; returns ``{"before", "after"}``."""
    reason = " ".join((reason or "").split())
    if not 1 <= len(reason) <= 500:
        raise ValidationFailed("a reason of 1-500 characters is required", code=codes.REASON_REQUIRED)
    with conn.atomic():
        before = _lock_requested(conn, payout_id, staff_id, "reject")
        after = conn.one(q.REJECT_PAYOUT, id=before["id"], staff_id=staff_id, actor=staff_id, reason=reason, actor_reason=reason)
        assert after is not None
        release(conn, after, "rejected")
    return {"before": staff_view(before), "after": staff_view(after)}


def list_for_review(conn: Conn, status: str = "requested", limit: int = 50, cursor: str | None = None) -> dict[str, Any]:
    """Payouts in ``status`` (default: awaiting approval), oldest first, with the owner's email and standing."""
    if status not in STATES:
        raise ValidationFailed(f"status must be one of {', '.join(STATES)}", code=codes.INVALID_STATUS)
    if not 1 <= limit <= 200:
        raise ValidationFailed("limit must be 1-200", code=codes.INVALID_LIMIT)
    after_at, after_id = _decode_cursor(REVIEW_LIST, cursor)
    rows = conn.all(q.LIST_FOR_REVIEW, status=status, after_at=after_at, after_id=after_id, limit=limit + 1)
    rows, next_cursor = _page(REVIEW_LIST, rows, limit)
    items = [staff_view(r) for r in rows]
    # Each payout's account standing in trust and safety (docs/fraud.md), in one more statement.
    risk = {r["user_id"]: r for r in conn.all(risk_q.PAYOUT_RISK, user_ids=sorted({i["user_id"] for i in items}))} if items else {}
    for item in items:
        found = risk.get(item["user_id"])
        item["risk_state"] = found["risk_state"] if found else "ok"
        item["top_signals"] = json.loads(found["top_signals"]) if found else []
    return {"items": items, "next_cursor": next_cursor}
