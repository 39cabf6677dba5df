"""Risk rules, states and their effects (docs/fraud.md).

Off the hot path: ``scan`` (the maintenance task ``risk_scan``, every minute) reads what is new
since its watermark (observations and completions), measures every rule for the accounts concerned
and the accounts linked to them, records each rule's signal, and moves accounts up to ``watch`` or
``review`` when the enforced score says so. Rules are rows of ``risk_rules``; each is enforced for an
account only when its feature flag ``risk.<rule>`` is on for it (otherwise shadow mode: the signal is
recorded with ``enforced = false`` and has no effect).

States: ok -> watch -> review -> suspended -> banned. The rules never go past review (so shared
address signals alone never lead further); suspending and banning are staff decisions.
"""

from __future__ import annotations

import json
import time
from typing import Any

from functions.flags import service as flags
from functions.ledger import service as ledger
from functions.ledger.service import NotPending
from functions.notifications.service import notify
from functions.risk import queries as q
from shared import error_codes as codes
from shared.db import Conn
from shared.errors import ValidationFailed
from shared.logs import get_logger

log = get_logger(__name__)

STATES = ("ok", "watch", "review", "suspended", "banned")
RANK = {s: i for i, s in enumerate(STATES)}
# Total enforced score at which the rules move an account (never further than review).
WATCH_AT = 25
REVIEW_AT = 60


def flag_key(rule: str) -> str:
    return f"risk.{rule}"


def rules(conn: Conn) -> list[dict[str, Any]]:
    return conn.all(q.RULES)


def target_state(score: int) -> str:
    return "review" if score >= REVIEW_AT else "watch" if score >= WATCH_AT else "ok"


def assess(conn: Conn, user_id: str, rule_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Measures every rule for one account, records the signals, and escalates its state if due.

    Call in a transaction. Returns {"score", "shadow_score", "state", "changed"}.
    """
    score = shadow = 0
    for rule in rule_rows if rule_rows is not None else rules(conn):
        row = conn.one(q.MEASURE[rule["name"]], user_id=user_id, window_minutes=rule["window_minutes"])
        value = int(row["value"] or 0) if row else 0
        hit = value >= rule["threshold"]
        enforced = flags.is_enabled(conn, flag_key(rule["name"]), user_id)
        points = rule["weight"] if hit else 0
        if hit or value > 0:
            details = row["details"] if row else {}
            conn.execute(
                q.UPSERT_SIGNAL,
                user_id=user_id,
                rule=rule["name"],
                value=value,
                score=points,
                enforced=enforced,
                details=json.dumps(details if isinstance(details, dict) else json.loads(details or "{}"), separators=(",", ":")),
            )
        else:
            conn.execute(q.DELETE_SIGNAL, user_id=user_id, rule=rule["name"])
        if enforced:
            score += points
        else:
            shadow += points
    user = conn.one(q.USER_STATE, user_id=user_id)
    if user is None or user["role"] != "user" or user["status"] == "erased":
        return {"score": score, "shadow_score": shadow, "state": user["risk_state"] if user else None, "changed": False}
    current = user["risk_state"]
    target = target_state(score)
    changed = False
    if current in ("ok", "watch") and RANK[target] > RANK[current] and score > user["risk_cleared_score"]:
        reason = _rules_reason(conn, user_id)
        transition(conn, user_id, current, target, actor_kind="rules", actor_id=None, reason=reason, score=score)
        current, changed = target, True
    return {"score": score, "shadow_score": shadow, "state": current, "changed": changed}


def _rules_reason(conn: Conn, user_id: str) -> str:
    """The enforced hits behind a rules transition, e.g. ``rules: linked_device (13 >= 3), ...``."""
    hits = [s for s in conn.all(q.SIGNALS, user_id=user_id) if s["enforced"] and s["score"] > 0]
    return "rules: " + ", ".join(f"{s['rule']} ({s['value']} >= {s['threshold']})" for s in hits)[:990]


def transition(
    conn: Conn, user_id: str, from_state: str, to_state: str, *, actor_kind: str, actor_id: str | None, reason: str, score: int | None
) -> dict[str, Any]:
    """Moves an account to ``to_state`` with its history row and effects (in the caller's transaction).

    banned: status blocked, every session revoked, every pending credit clawed back (a reversal entry
    each; available and paid money is never touched). Leaving banned unblocks the account.
    """
    if to_state not in STATES:
        raise ValidationFailed(f"unknown risk state {to_state!r}", code=codes.INVALID_RISK_STATE)
    cleared = score if (to_state == "ok" and actor_kind == "staff") else None
    conn.execute(q.SET_STATE, user_id=user_id, state=to_state, cleared_score=cleared)
    row = conn.one(
        q.INSERT_TRANSITION,
        user_id=user_id,
        from_state=from_state,
        to_state=to_state,
        actor_kind=actor_kind,
        actor_id=actor_id,
        reason=reason,
        score=score,
    )
    assert row is not None
    effects: dict[str, Any] = {}
    if to_state == "banned":
        effects["sessions_revoked"] = conn.execute(q.REVOKE_SESSIONS, user_id=user_id)
        clawed = 0
        reversed_micros = 0
        for entry in conn.all(q.PENDING_ENTRIES, user_id=user_id):
            try:
                rev = ledger.reverse(
                    conn,
                    user_id=user_id,
                    entry_id=int(entry["entry_id"]),
                    source="risk",
                    metadata={"reason": "banned", "transition": row["id"]},
                )
            except NotPending:  # cleared meanwhile: available money is never silently taken back
                continue
            if not rev.get("duplicate"):
                clawed += 1
                reversed_micros += int(rev["reversed_amount"])
        effects["entries_clawed_back"] = clawed
        effects["clawed_back"] = ledger.money(reversed_micros)
    # The user is told when what they can do changes (issue 11). "watch" is silent monitoring: to the
    # user it is "ok", and the rules that moved the account are never part of the message.
    shown_before, shown_after = (s if s not in ("ok", "watch") else "ok" for s in (from_state, to_state))
    if shown_before != shown_after:
        notify(conn, user_id, "account_review", {"state": shown_after})
    log.info(
        "risk state %s -> %s",
        from_state,
        to_state,
        extra={"event": "risk_state_changed", "user_id": user_id, "actor_kind": actor_kind, "to_state": to_state, **effects},
    )
    return {"id": row["id"], "created_at": row["created_at"], "effects": effects}


def scan(conn: Conn, *, limit: int = 5000) -> dict[str, Any]:
    """One pass of the rules over what is new since the watermark; returns counts and how long it took.

    ``conn`` is the task's connection; each account is assessed in its own short transaction so a
    long scan holds no lock for long, and the watermark advances only after every account was done.
    """
    started = time.perf_counter()
    rule_rows = rules(conn)
    with conn.transaction():
        state = conn.one(q.SCAN_STATE)
        assert state is not None
        news = conn.one(q.SCAN_NEW, after_id=state["last_observation_id"], after_completion=state["last_completion_at"], limit=limit)
    assert news is not None
    users = sorted(news["users"] or [])
    changed: list[str] = []
    for user_id in users:
        with conn.transaction():
            result = assess(conn, user_id, rule_rows)
        if result["changed"]:
            changed.append(user_id)
    with conn.transaction():
        conn.execute(
            q.SCAN_ADVANCE,
            obs=news["last_observation_id"] or state["last_observation_id"],
            completion=news["last_completion_at"] or state["last_completion_at"],
        )
    ms = round((time.perf_counter() - started) * 1000, 1)
    return {"assessed": len(users), "escalated": len(changed), "ms": ms}
