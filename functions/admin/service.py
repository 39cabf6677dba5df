"""The staff back office: user search and detail, roles, manual adjustments, payout and KYC decisions,
videos, and the audit log.

Every function takes the caller's connection inside a transaction and an ``Actor`` (who is acting,
in which role, under which request id). Every change writes its audit entry (shared.audit) in that
same transaction, so a change and its audit row commit together or not at all. Reads of one user's
record (profile, ledger, KYC documents) are audited too; searches are audited without their terms
(an email typed into a search is personal data, and the audit log is permanent).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from functions.admin import queries as q
from functions.admin.models import AdjustmentBody, AdjustmentLookupQuery, AuditQuery, UserSearchQuery
from functions.auth import mfa
from functions.flags import service as flags
from functions.kyc import service as kyc
from functions.ledger import service as ledger
from functions.notifications.service import notify
from functions.payouts import service as payouts
from functions.risk import staff as risk_staff
from functions.videos import service as videos
from functions.videos.models import VideoCreate
from shared import audit
from shared import error_codes as codes
from shared.audit import Actor
from shared.db import Conn
from shared.errors import BadRequest, Conflict, Forbidden, NotFound
from shared.ids import uuid_or
from shared.pagination import decode_cursor, encode_cursor

RECENT_ENTRIES = 20
RECENT_PAYOUTS = 10
# payout states in which money is held and on its way out
IN_FLIGHT_PAYOUT_STATES = ("requested", "approved", "submitted")


def record(
    conn: Conn,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: str,
    before: Any,
    after: Any,
    *,
    reason: str | None = None,
    subject_user_id: str | None = None,
) -> int:
    return audit.record(
        conn,
        actor_id=actor.user_id,
        actor_role=actor.role,
        action=action,
        target_type=target_type,
        target_id=target_id,
        before=before,
        after=after,
        request_id=actor.request_id,
        reason=reason,
        subject_user_id=subject_user_id,
    )


def _user_id_or_404(value: str) -> str:
    return uuid_or(value, NotFound("no such user", code=codes.USER_NOT_FOUND))


def _require_user(conn: Conn, user_id: str) -> str:
    uid = _user_id_or_404(user_id)
    if conn.one(q.USER_EXISTS, id=uid) is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    return uid


# --- users -----------------------------------------------------------------------------------------
def _prefix_bounds(prefix: str) -> tuple[str, str]:
    """[lo, hi) in byte order covering exactly the strings that start with ``prefix``."""
    last = ord(prefix[-1])
    return prefix, prefix[:-1] + chr(min(last + 1, 0x10FFFF))


def search_users(conn: Conn, actor: Actor, query: UserSearchQuery) -> dict[str, Any]:
    """Users by exact email, email prefix or referral code, or everyone (optionally one role) newest first."""
    limit = query.limit
    next_cursor: str | None = None
    if query.email is not None:
        row = conn.one(q.USER_BY_EMAIL, email=query.email.strip().lower())
        items, how = ([row] if row else []), "email"
    elif query.referral_code is not None:
        row = conn.one(q.USER_BY_REFERRAL_CODE, code=query.referral_code.upper())
        items, how = ([row] if row else []), "referral_code"
    elif query.email_prefix is not None:
        prefix = query.email_prefix.strip().lower()
        if not prefix:
            raise BadRequest("email_prefix must not be blank", code=codes.INVALID_PREFIX)
        after = decode_cursor(query.cursor, "admin_users_prefix", {"email": str})["email"] if query.cursor else ""
        lo, hi = _prefix_bounds(prefix)
        items = conn.all(q.USERS_BY_EMAIL_PREFIX, lo=lo, hi=hi, after=after, limit=limit + 1)
        if len(items) > limit:
            items = items[:limit]
            next_cursor = encode_cursor("admin_users_prefix", {"email": items[-1]["email"]})
        how = "email_prefix"
    else:
        after_at: str | None = None
        after_id: str | None = None
        if query.cursor:
            key = decode_cursor(query.cursor, "admin_users", {"at": str, "id": str})
            try:
                after_at = dt.datetime.fromisoformat(key["at"]).isoformat()
                after_id = str(uuid.UUID(key["id"]))
            except ValueError as exc:
                from shared.errors import ValidationFailed

                raise ValidationFailed("the cursor is not valid for this list", code=codes.INVALID_CURSOR) from exc
        items = conn.all(q.USERS_NEWEST, role=query.role, after_at=after_at, after_id=after_id, limit=limit + 1)
        if len(items) > limit:
            items = items[:limit]
            next_cursor = encode_cursor("admin_users", {"at": items[-1]["created_at"].isoformat(), "id": items[-1]["id"]})
        how = "role" if query.role else "all"
    # the search term itself is personal data and never enters the (permanent) audit log
    record(conn, actor, "user.search", "user_search", how, None, {"by": how, "results": len(items)})
    return {"items": items, "next_cursor": next_cursor}


def _entry(row: dict[str, Any]) -> dict[str, Any]:
    """A ledger entry as staff see it: the amounts in the money shape."""
    return {**row, "amount": ledger.money(row["amount"]), "balance_after": ledger.money(row["balance_after"])}


def _cents(cents: int) -> dict[str, Any]:
    return ledger.money(cents * ledger.MICROS_PER_CENT)


def _recent_payout(row: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in ("amount_cents", "currency")}
    out["amount"] = _cents(row["amount_cents"])
    return out


def user_detail(conn: Conn, actor: Actor, user_id: str) -> dict[str, Any]:
    """Profile, balance, recent ledger entries and a payouts summary of one user (audited as a read)."""
    uid = _user_id_or_404(user_id)
    row = conn.one(q.USER_DETAIL, id=uid)
    if row is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    balance = {
        "available": ledger.money(row.pop("available")),
        "pending": ledger.money(row.pop("pending")),
        "held": ledger.money(row.pop("held")),
        "lifetime_earned": ledger.money(row.pop("lifetime_earned")),
        "lifetime_paid_out": ledger.money(row.pop("lifetime_paid_out")),
        "entry_count": row.pop("entry_count"),
    }
    entries = [_entry(e) for e in conn.all(q.LEDGER_PAGE, user_id=uid, before_seq=None, type=None, limit=RECENT_ENTRIES)]
    summary = conn.all(q.PAYOUT_SUMMARY, user_id=uid)
    recent = conn.all(q.RECENT_PAYOUTS, user_id=uid, limit=RECENT_PAYOUTS)
    record(conn, actor, "user.view", "user", uid, None, None)
    return {
        "user": row,
        "balance": balance,
        "recent_entries": entries,
        "payouts": {
            "by_status": {r["status"]: {"count": r["count"], "amount": _cents(r["amount_cents"])} for r in summary},
            "in_flight": sum(r["count"] for r in summary if r["status"] in IN_FLIGHT_PAYOUT_STATES),
            "recent": [_recent_payout(r) for r in recent],
        },
    }


def user_ledger(conn: Conn, actor: Actor, user_id: str, limit: int, cursor: str | None, entry_type: str | None = None) -> dict[str, Any]:
    """One user's ledger entries, newest first, optionally of one type (audited as a read)."""
    uid = _require_user(conn, user_id)
    before_seq = decode_cursor(cursor, "admin_ledger", {"seq": int})["seq"] if cursor else None
    rows = [_entry(e) for e in conn.all(q.LEDGER_PAGE, user_id=uid, before_seq=before_seq, type=entry_type, limit=limit + 1)]
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor("admin_ledger", {"seq": rows[-1]["seq"]})
    record(conn, actor, "user.ledger_view", "user", uid, None, {"entries": len(rows)})
    return {"items": rows, "next_cursor": next_cursor}


ACCOUNT_SESSIONS = 20
ACCOUNT_REFERRED = 50
ACCOUNT_WITHHELD = 50


def user_account(conn: Conn, actor: Actor, user_id: str) -> dict[str, Any]:
    """Sessions, payout methods (masked), the referral tree and withheld rewards of one user (audited as a read)."""
    uid = _require_user(conn, user_id)
    withheld = [
        {
            **{k: v for k, v in w.items() if k not in ("reward_micros", "withheld_micros")},
            "reward": ledger.money(w["reward_micros"]),
            "withheld": ledger.money(w["withheld_micros"]),
        }
        for w in conn.all(q.USER_WITHHELD, user_id=uid, limit=ACCOUNT_WITHHELD)
    ]
    result = {
        "user_id": uid,
        "sessions": conn.all(q.USER_SESSIONS, user_id=uid, limit=ACCOUNT_SESSIONS),
        "payout_methods": conn.all(q.USER_PAYOUT_METHODS, user_id=uid),
        "referrals": {
            "referred_by": conn.one(q.USER_REFERRER, user_id=uid),
            "referred": conn.all(q.USER_REFERRED, user_id=uid, limit=ACCOUNT_REFERRED),
            "referred_total": (conn.one(q.USER_REFERRED_COUNT, user_id=uid) or {"n": 0})["n"],
        },
        "withheld_rewards": withheld,
    }
    record(conn, actor, "user.account_view", "user", uid, None, None)
    return result


def grant_withheld(conn: Conn, actor: Actor, user_id: str, withheld_id: int, reason: str) -> dict[str, Any]:
    """Credits a reward the daily cap withheld, once (the ledger key is the withheld row's), and marks it granted.

    409 ``withheld_resolved`` when it was granted or dismissed already; 403 ``own_adjustment`` on oneself.
    """
    uid = _user_id_or_404(user_id)
    if uid == actor.user_id:
        raise Forbidden("staff cannot grant rewards to themselves", code=codes.OWN_ADJUSTMENT)
    row = conn.one(q.LOCK_WITHHELD, id=withheld_id, user_id=uid)
    if row is None:
        raise NotFound("no such withheld reward for this user", code=codes.WITHHELD_NOT_FOUND)
    if row["status"] != "withheld":
        raise Conflict(f"this reward was {row['status']} already", code=codes.WITHHELD_RESOLVED, details={"status": row["status"]})
    posted = ledger.post(
        conn,
        user_id=uid,
        type="adjustment",
        amount=row["withheld_micros"],
        idempotency_key=f"withheld_grant:{withheld_id}",
        source="admin",
        reference=row["video_id"],
        metadata={"reason": reason, "staff_id": actor.user_id, "withheld_id": withheld_id},
    )
    conn.execute(q.RESOLVE_WITHHELD, id=withheld_id, status="granted", staff_id=actor.user_id, entry_id=posted.entry_id)
    record(
        conn,
        actor,
        "reward.withheld_grant",
        "withheld_reward",
        str(withheld_id),
        {"status": "withheld"},
        {"status": "granted", "amount_micros": row["withheld_micros"], "entry_id": posted.entry_id},
        reason=reason,
        subject_user_id=uid,
    )
    return {
        "withheld_id": withheld_id,
        "user_id": uid,
        "status": "granted",
        "amount": ledger.money(row["withheld_micros"]),
        "entry_id": posted.entry_id,
        "balance_after": ledger.money(posted.balance_after),
    }


def set_role(conn: Conn, actor: Actor, user_id: str, role: str) -> dict[str, Any]:
    """Changes a user's role and revokes their sessions (so the new role's timeouts apply at once).

    409 ``last_admin`` when it would leave no active admin; 409 ``user_erased`` for an erased account.
    """
    uid = _user_id_or_404(user_id)
    # lock every active admin first (in id order), then the target: the last-admin check cannot race
    admins = [r["id"] for r in conn.all(q.LOCK_ACTIVE_ADMINS)]
    target = conn.one(q.LOCK_USER, id=uid)
    if target is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    if target["status"] == "erased":
        raise Conflict("this account was erased", code=codes.USER_ERASED)
    if target["role"] == role:
        return {"user_id": uid, "role": role, "changed": False, "sessions_revoked": 0}
    if target["role"] == "admin" and role != "admin" and admins == [uid]:
        raise Conflict("this is the last active admin; promote another admin first", code=codes.LAST_ADMIN)
    conn.one(q.SET_ROLE, id=uid, role=role)
    revoked = conn.execute(q.REVOKE_SESSIONS, user_id=uid, reason="role_changed")
    record(conn, actor, "user.role_change", "user", uid, {"role": target["role"]}, {"role": role, "sessions_revoked": revoked})
    return {"user_id": uid, "role": role, "changed": True, "sessions_revoked": revoked}


def reset_mfa(conn: Conn, actor: Actor, user_id: str) -> dict[str, Any]:
    """Removes another staff member's second factor (they enrol again at their next sign-in), revokes
    their sessions, tells them, and audits it. Nobody resets their own: 403 ``own_mfa_reset``."""
    uid = _user_id_or_404(user_id)
    if uid == actor.user_id:
        raise Forbidden("nobody can reset their own two-factor authentication; ask another admin", code=codes.OWN_MFA_RESET)
    target = conn.one(q.LOCK_USER, id=uid)
    if target is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    removed = mfa.remove(conn, uid)
    revoked = conn.execute(q.REVOKE_SESSIONS, user_id=uid, reason="mfa_reset")
    if removed:
        notify(conn, uid, "mfa_reset")
    record(conn, actor, "user.mfa_reset", "user", uid, {"mfa": removed}, {"mfa": False, "sessions_revoked": revoked})
    return {"user_id": uid, "removed": removed, "sessions_revoked": revoked}


def adjust(conn: Conn, actor: Actor, body: AdjustmentBody, idempotency_key: str | None) -> dict[str, Any]:
    """Posts a manual ``adjustment`` ledger entry exactly once per (staff member, Idempotency-Key)."""
    if not idempotency_key:
        raise BadRequest("manual adjustments need an Idempotency-Key header", code=codes.IDEMPOTENCY_KEY_REQUIRED)
    if body.user_id == actor.user_id:
        raise Forbidden("staff cannot adjust their own balance", code=codes.OWN_ADJUSTMENT)
    _require_user(conn, body.user_id)
    posted = ledger.post(
        conn,
        user_id=body.user_id,
        type="adjustment",
        amount=body.amount_micros,
        idempotency_key=f"adjustment:{actor.user_id}:{idempotency_key}",
        source="admin",
        metadata={"reason": body.reason, "staff_id": actor.user_id},
    )
    result = _adjustment_view(body.user_id, posted.entry_id, posted.seq, body.amount_micros, posted.balance_after, posted.created_at)
    result["reason"] = body.reason
    result["duplicate"] = posted.duplicate
    if not posted.duplicate:  # a retry already has its audit entry
        record(
            conn,
            actor,
            "ledger.adjustment",
            "user",
            body.user_id,
            {"available_micros": posted.balance_after - body.amount_micros},
            {"available_micros": posted.balance_after, "amount_micros": body.amount_micros, "entry_id": posted.entry_id, "seq": posted.seq},
            reason=body.reason,
        )
    return result


def reverse_entry(conn: Conn, actor: Actor, user_id: str, entry_id: str, reason: str) -> dict[str, Any]:
    """Claws back a pending credit of ``user_id`` with a ``reversal`` entry pointing at it (audited).

    Reversing twice answers the first reversal (``duplicate: true``, no second audit entry); an entry
    that already cleared (or was never pending) is 409 ``not_pending``; unknown ids are 404.
    """
    uid = _require_user(conn, user_id)
    if not entry_id.isascii() or not entry_id.isdigit() or len(entry_id) > 18:
        raise NotFound("no such entry", code=codes.ENTRY_NOT_FOUND)
    if uid == actor.user_id:
        raise Forbidden("staff cannot reverse their own credits", code=codes.OWN_REVERSAL)
    row = ledger.reverse(conn, user_id=uid, entry_id=int(entry_id), source="admin", metadata={"reason": reason, "staff_id": actor.user_id})
    amount = int(row["reversed_amount"])
    result = {
        "user_id": uid,
        "entry_id": int(entry_id),
        "reversal_entry_id": row["entry_id"],
        "reversal_seq": row["entry_seq"],
        "amount": ledger.money(-amount),
        "created_at": row["entry_created_at"],
        "reason": reason,
        "duplicate": row["duplicate"],
    }
    if not row["duplicate"]:
        record(
            conn,
            actor,
            "ledger.reversal",
            "ledger_entry",
            str(entry_id),
            {"pending_micros": amount},
            {"reversal_entry_id": row["entry_id"], "amount_micros": -amount},
            reason=reason,
            subject_user_id=uid,
        )
    return result


def _adjustment_view(user_id: str, entry_id: int, seq: int, amount: int, balance_after: int, created_at: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "entry_id": entry_id,
        "seq": seq,
        "amount": ledger.money(amount),
        "balance_after": ledger.money(balance_after),
        "created_at": created_at,
    }


def adjustment_by_key(conn: Conn, actor: Actor, query: AdjustmentLookupQuery) -> dict[str, Any]:
    """The adjustment a staff member posted with an Idempotency-Key (a found one is audited as a read).

    404 ``adjustment_not_found`` means nothing was committed under that key; ``details.in_progress``
    says whether a request with the key still holds its claim (it may yet commit). Either way a
    retry with the same key is safe: it posts at most once."""
    staff_id = query.staff_id or actor.user_id
    uid = _require_user(conn, query.user_id)
    row = conn.one(q.ADJUSTMENT_BY_KEY, user_id=uid, key=f"adjustment:{staff_id}:{query.idempotency_key}")
    if row is None:
        in_progress = bool(conn.value(q.KEY_IN_PROGRESS, staff_id=staff_id, key=query.idempotency_key))
        raise NotFound(
            "no adjustment was committed under this Idempotency-Key",
            code=codes.ADJUSTMENT_NOT_FOUND,
            details={"in_progress": in_progress},
        )
    metadata = row["metadata"] or {}
    view = _adjustment_view(uid, row["id"], row["seq"], row["amount"], row["balance_after"], row["created_at"])
    view["reason"] = metadata.get("reason")
    view["staff_id"] = metadata.get("staff_id", staff_id)
    view["idempotency_key"] = query.idempotency_key
    record(conn, actor, "ledger.adjustment_view", "user", uid, None, {"staff_id": staff_id, "entry_id": row["id"]})
    return view


# --- payouts (finance) -----------------------------------------------------------------------------
def payouts_for_review(conn: Conn, status: str, limit: int, cursor: str | None) -> dict[str, Any]:
    return payouts.list_for_review(conn, status=status, limit=limit, cursor=cursor)


def payout_detail(conn: Conn, actor: Actor, payout_id: str) -> dict[str, Any]:
    view = payouts.get_for_staff(conn, payout_id)
    record(conn, actor, "payout.view", "payout", view["id"], None, None, subject_user_id=view["user_id"])
    return view


def approve_payout(conn: Conn, actor: Actor, payout_id: str) -> dict[str, Any]:
    change = payouts.approve(conn, payout_id, actor.user_id)
    after = change["after"]
    record(conn, actor, "payout.approve", "payout", after["id"], change["before"], after, subject_user_id=after["user_id"])
    return after


def reject_payout(conn: Conn, actor: Actor, payout_id: str, reason: str) -> dict[str, Any]:
    change = payouts.reject(conn, payout_id, actor.user_id, reason)
    after = change["after"]
    record(conn, actor, "payout.reject", "payout", after["id"], change["before"], after, reason=reason, subject_user_id=after["user_id"])
    return after


# --- KYC (compliance) ------------------------------------------------------------------------------
def kyc_queue(conn: Conn, limit: int, cursor: str | None) -> dict[str, Any]:
    return kyc.review_queue(conn, limit=limit, cursor=cursor)


def kyc_documents(conn: Conn, actor: Actor, user_id: str) -> dict[str, Any]:
    """The user's documents with short-lived signed download URLs (audited: who looked at whose identity)."""
    uid = _require_user(conn, user_id)
    documents = kyc.documents_for_review(conn, uid)
    record(
        conn,
        actor,
        "kyc.documents_view",
        "user",
        uid,
        None,
        {"documents": [d["id"] for d in documents], "download_urls": sum(1 for d in documents if d["download_url"])},
    )
    return {"user_id": uid, "items": documents, "next_cursor": None}


def kyc_decide(conn: Conn, actor: Actor, user_id: str, decision: str, reason: str) -> dict[str, Any]:
    uid = _user_id_or_404(user_id)
    change = kyc.decide(conn, uid, decision, reason, actor.user_id)
    record(conn, actor, "kyc.decision", "user", uid, change["before"], change["after"], reason=reason)
    return {"user_id": uid, **change["after"]}


# --- videos ----------------------------------------------------------------------------------------
def create_video(conn: Conn, actor: Actor, body: VideoCreate) -> dict[str, Any]:
    video = videos.create_video(conn, **body.model_dump(), created_by=actor.user_id)
    record(conn, actor, "video.create", "video", str(video["id"]), None, video)
    return video


def list_videos(conn: Conn) -> dict[str, Any]:
    return {"items": videos.all_videos(conn), "next_cursor": None}


def update_video(conn: Conn, actor: Actor, video_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    vid = uuid_or(video_id, NotFound("no such video", code=codes.VIDEO_NOT_FOUND))
    before, after = videos.update_video(conn, vid, changes)
    action = "video.deactivate" if before["active"] and not after["active"] else "video.update"
    record(conn, actor, action, "video", vid, before, after)
    return after


# --- feature flags ---------------------------------------------------------------------------------
def list_flags(conn: Conn) -> dict[str, Any]:
    return {"items": flags.list_flags(conn), "next_cursor": None}


def set_flag(conn: Conn, actor: Actor, key: str, enabled: bool, rollout_percent: int, description: str | None) -> dict[str, Any]:
    change = flags.set_flag(conn, key, enabled, rollout_percent, description, actor.user_id)
    record(conn, actor, "flag.set", "feature_flag", key, change["before"], change["after"])
    return dict(change["after"])


# --- trust and safety (functions/risk, docs/fraud.md) -------------------------------------------------------
def risk_queue(conn: Conn, query: Any) -> dict[str, Any]:
    return risk_staff.queue(conn, query.state, query.limit, query.cursor)


def risk_case(conn: Conn, actor: Actor, user_id: str) -> dict[str, Any]:
    """One account's case (audited as a read: who looked at whose links)."""
    view = risk_staff.case(conn, user_id)
    record(conn, actor, "risk.case.view", "user", view["user_id"], None, None)
    return view


def risk_decide(conn: Conn, actor: Actor, user_id: str, decision: str, reason: str) -> dict[str, Any]:
    done = risk_staff.decide(conn, actor.user_id, user_id, decision, reason)
    record(
        conn,
        actor,
        f"risk.{decision}",
        "user",
        done["user_id"],
        {"risk_state": done["from_state"]},
        {"risk_state": done["to_state"], **done["effects"]},
        reason=reason,
    )
    return done


def risk_rules(conn: Conn) -> dict[str, Any]:
    return risk_staff.list_rules(conn)


def risk_set_rule(conn: Conn, actor: Actor, name: str, threshold: int, window_minutes: int, weight: int) -> dict[str, Any]:
    change = risk_staff.set_rule(conn, actor.user_id, name, threshold, window_minutes, weight)
    keep = ("threshold", "window_minutes", "weight")
    record(
        conn, actor, "risk.rule.update", "risk_rule", name, {k: change["before"][k] for k in keep}, {k: change["after"][k] for k in keep}
    )
    return change["after"]


# --- the audit log ---------------------------------------------------------------------------------
def audit_page(conn: Conn, query: AuditQuery) -> dict[str, Any]:
    before_id = decode_cursor(query.cursor, "admin_audit", {"id": int})["id"] if query.cursor else None
    rows = conn.all(
        q.AUDIT_PAGE,
        actor_id=query.actor_id,
        subject_user_id=query.subject_user_id,
        target_type=query.target_type,
        target_id=query.target_id,
        action=query.action,
        before_id=before_id,
        limit=query.limit + 1,
    )
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = encode_cursor("admin_audit", {"id": rows[-1]["id"]})
    return {"items": rows, "next_cursor": next_cursor}
