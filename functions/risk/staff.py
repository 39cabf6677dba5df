"""What staff see and decide in the review queue (the admin function routes here and audits)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from functions.ledger import service as ledger
from functions.risk import queries as q
from functions.risk import service
from shared import error_codes as codes
from shared.db import Conn
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.ids import uuid_or
from shared.pagination import decode_cursor, encode_cursor

DECISION_STATE = {"clear": "ok", "watch": "watch", "review": "review", "suspend": "suspended", "ban": "banned"}


def _uid(value: str) -> str:
    return uuid_or(value, NotFound("no such user", code=codes.USER_NOT_FOUND))


def queue(conn: Conn, state: str, limit: int, cursor: str | None) -> dict[str, Any]:
    after: dict[str, Any] = {"at": None, "id": None}
    if cursor:
        after = decode_cursor(cursor, "risk_queue", {"at": str, "id": str})
        bad = ValidationFailed("the cursor is not valid for this list; start again without it", code=codes.INVALID_CURSOR)
        try:
            after = {"at": dt.datetime.fromisoformat(after["at"]), "id": uuid_or(after["id"], bad)}
        except ValueError as exc:
            raise bad from exc
    rows = conn.all(q.QUEUE, state=state, after=after["at"], after_id=after["id"], limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    for r in rows:
        r["signals"] = json.loads(r["signals"])
    next_cursor = (
        encode_cursor("risk_queue", {"at": rows[-1]["risk_state_changed_at"].isoformat(), "id": rows[-1]["user_id"]}) if more else None
    )
    return {"items": rows, "next_cursor": next_cursor}


def case(conn: Conn, user_id: str) -> dict[str, Any]:
    uid = _uid(user_id)
    user = conn.one(q.USER_STATE, user_id=uid)
    if user is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    signals = conn.all(q.SIGNALS, user_id=uid)
    for s in signals:
        s["details"] = json.loads(s["details"])
    links = conn.all(q.LINKS, user_id=uid)
    nodes = [{"user_id": uid, "risk_state": user["risk_state"], "role": "subject"}]
    nodes += [{"user_id": link["user_id"], "risk_state": link["risk_state"], "role": "linked"} for link in links]
    edges = [{"source": uid, "target": link["user_id"], "via": via} for link in links for via in link["via"]]
    velocity = conn.one(q.VELOCITY, user_id=uid)
    assert velocity is not None
    return {
        "user_id": uid,
        "risk_state": user["risk_state"],
        "score": sum(s["score"] for s in signals if s["enforced"]),
        "shadow_score": sum(s["score"] for s in signals if not s["enforced"]),
        "signals": signals,
        "links": {"nodes": nodes, "edges": edges},
        "referrals": {"referrer_id": conn.value(q.REFERRER, user_id=uid), "referred": conn.all(q.REFERRAL_TREE, user_id=uid)},
        "velocity": {
            "completions_1h": velocity["completions_1h"],
            "completions_24h": velocity["completions_24h"],
            "completions_7d": velocity["completions_7d"],
            "rewards_24h": ledger.money(int(velocity["rewards_24h_micros"])),
            "rewards_7d": ledger.money(int(velocity["rewards_7d_micros"])),
        },
        "transitions": conn.all(q.TRANSITIONS, user_id=uid),
    }


def decide(conn: Conn, staff_id: str, user_id: str, decision: str, reason: str) -> dict[str, Any]:
    """A staff decision on an account (clear, watch, review, suspend, ban) with its reason and effects."""
    uid = _uid(user_id)
    if uid == staff_id:
        raise Conflict("staff cannot decide on their own account", code=codes.OWN_ACCOUNT)
    user = conn.one(q.USER_STATE, user_id=uid)
    if user is None:
        raise NotFound("no such user", code=codes.USER_NOT_FOUND)
    if user["role"] != "user":
        raise Conflict("staff accounts are not subject to risk decisions", code=codes.STAFF_ACCOUNT)
    if user["status"] == "erased":
        raise Conflict("this account was erased", code=codes.ACCOUNT_ERASED)
    to_state = DECISION_STATE[decision]
    if to_state == user["risk_state"]:
        raise Conflict(f"the account is already in {to_state}", code=codes.RISK_STATE_UNCHANGED)
    score = sum(s["score"] for s in conn.all(q.SIGNALS, user_id=uid) if s["enforced"])
    done = service.transition(conn, uid, user["risk_state"], to_state, actor_kind="staff", actor_id=staff_id, reason=reason, score=score)
    return {"user_id": uid, "from_state": user["risk_state"], "to_state": to_state, "transition_id": done["id"], "effects": done["effects"]}


def list_rules(conn: Conn) -> dict[str, Any]:
    return {"items": [_rule(r) for r in service.rules(conn)]}


def _rule(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "flag": service.flag_key(row["name"])}


def set_rule(conn: Conn, staff_id: str, name: str, threshold: int, window_minutes: int, weight: int) -> dict[str, Any]:
    """Changes a rule's threshold, window and weight; returns {"before", "after"} for the audit log."""
    if name not in q.MEASURE:
        raise NotFound("no such rule", code=codes.RULE_NOT_FOUND)
    before = conn.one(q.RULE_FOR_UPDATE, name=name)
    if before is None:
        raise NotFound("no such rule", code=codes.RULE_NOT_FOUND)
    if (threshold, window_minutes, weight) == (before["threshold"], before["window_minutes"], before["weight"]):
        raise ValidationFailed("nothing to change", code=codes.RULE_UNCHANGED)
    after = conn.one(q.UPDATE_RULE, name=name, threshold=threshold, window_minutes=window_minutes, weight=weight, staff_id=staff_id)
    assert after is not None
    return {"before": _rule(before), "after": _rule(after)}
