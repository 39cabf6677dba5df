"""Verified watch progress: heartbeats, completion and the reward, the daily earning cap.

The crediting rules live in the database function ``progress_heartbeat`` (migration 0012; see
docs/progress.md): an ordinary heartbeat is one autocommitted statement. The heartbeat that reaches
the video's threshold is repeated inside a transaction that marks the completion, applies the daily
cap, posts the reward to the ledger, runs the referral hooks and writes the outbox event, so the
reward exists exactly when the completion does, and exactly once.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from pg8000.exceptions import DatabaseError

from functions.earnings import bonuses
from functions.ledger import service as ledger
from functions.progress import queries as q
from functions.progress.models import HeartbeatBody
from functions.risk import signals
from functions.videos.service import required_seconds
from shared import error_codes as codes
from shared import metrics, outbox
from shared.config import get_settings
from shared.db import EP_POSITION_OUT_OF_RANGE, EP_UNKNOWN_VIDEO, Conn, domain_error, sqlstate
from shared.errors import Forbidden, NotFound, ValidationFailed
from shared.models import rfc3339
from shared.pagination import decode_cursor, encode_cursor
from shared.sessions import Principal, authenticate, hash_token, principal_from_row

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The client's documented cadence: a playing heartbeat after the first of a stream claims this much
# watching (earnpay.watch.reported_seconds; credited / reported is the tracking accuracy metric).
HEARTBEAT_CADENCE_S = 10.0


def _seconds(value: Decimal | None) -> float:
    return float(value) if value is not None else 0.0


def _heartbeat_params(video_id: str, body: HeartbeatBody, daily_cap: int | None) -> dict[str, Any]:
    """The heartbeat statement's parameters but the user (the cap: the setting unless given)."""
    return {
        "video_id": video_id,
        "position": Decimal(f"{body.position_seconds:.3f}"),
        "playing": body.playing,
        "client_seq": body.client_seq,
        "session_id": body.session_id.lower() if body.session_id else None,
        "daily_cap": get_settings().daily_earning_cap_micros if daily_cap is None else daily_cap,
    }


def heartbeat(
    conn: Conn,
    user_id: str,
    video_id: str,
    body: HeartbeatBody,
    *,
    daily_cap: int | None = None,
    client: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """Applies one heartbeat; completes the video and credits its reward when the threshold is reached.

    ``conn`` is a connection outside any transaction (``Database.connection()``): the ordinary heartbeat
    is one autocommitted statement, and a due completion runs its own retried transaction on it."""
    params = {"user_id": user_id, **_heartbeat_params(video_id, body, daily_cap)}
    row = _call(conn, complete=False, **params)
    return _finish(conn, user_id, video_id, row, params, body.playing, client)


def heartbeat_with_session(
    conn: Conn,
    token: str,
    video_id: str,
    body: HeartbeatBody,
    *,
    daily_cap: int | None = None,
    client: tuple[str, str | None] | None = None,
) -> tuple[Principal, dict[str, Any]]:
    """The session check and the heartbeat in one statement (one round trip); raises 401/403/429 like
    the router's check. ``conn`` is outside any transaction, as for ``heartbeat``: completing a video
    still takes its own transaction (once per video)."""
    settings = get_settings()
    params = _heartbeat_params(video_id, body, daily_cap)
    try:
        row = conn.one(q.HEARTBEAT_AUTHENTICATED, token_hash=hash_token(token), max_hits=settings.user_requests_per_minute, **params)
    except DatabaseError as exc:
        if sqlstate(exc) not in (EP_UNKNOWN_VIDEO, EP_POSITION_OUT_OF_RANGE):
            raise
        # The statement rolled back, rate-limit count included: check the session on its own (it
        # counts the request), then answer the heartbeat's own 404/422.
        principal = authenticate(conn, token, settings)
        _call(conn, complete=False, user_id=principal.user_id, **params)
        raise
    principal = principal_from_row(row, settings)
    if principal.risk_state in ("suspended", "banned"):  # the statement did no heartbeat work (docs/fraud.md)
        raise Forbidden("this account is suspended and cannot earn while our team reviews it", code=codes.ACCOUNT_SUSPENDED)
    assert row is not None and row["status"] is not None
    user_params = {"user_id": principal.user_id, **params}
    return principal, _finish(conn, principal.user_id, video_id, row, user_params, body.playing, client)


def _finish(
    conn: Conn,
    user_id: str,
    video_id: str,
    row: dict[str, Any],
    params: dict[str, Any],
    playing: bool,
    client: tuple[str, str | None] | None = None,
) -> dict[str, Any]:
    """Answers a heartbeat's first statement; a due completion runs its own retried transaction."""
    _record(row, playing)
    if row["status"] != "completion_due":
        return _present_heartbeat(video_id, row, balance=None)

    def complete(conn: Conn) -> tuple[dict[str, Any], dict[str, Any] | None]:
        done = _call(conn, complete=True, **params)
        balance = _complete(conn, user_id, video_id, done) if done["status"] == "completed" else None
        if balance is not None and client is not None:
            # the completing heartbeat only (never an ordinary one): a trust-and-safety signal
            signals.observe(conn, user_id, "completion", client[0], client[1])
        return done, balance

    row, balance = conn.run_in_transaction(complete)  # retried on a serialization failure or deadlock
    return _present_heartbeat(video_id, row, balance=balance)


def _record(row: dict[str, Any], playing: bool) -> None:
    """The heartbeat and watch-time accuracy metrics (shared/metrics.py)."""
    status = row["status"]
    if status == "stale":
        metrics.heartbeat_rejected("stale")
    claimed = HEARTBEAT_CADENCE_S if playing and status not in ("started", "stream_started", "stale") else 0.0
    credited = _seconds(row["credited_now"]) if status != "completion_due" else 0.0
    metrics.heartbeat(status, credited_seconds=credited, reported_seconds=claimed)


def _call(conn: Conn, **params: Any) -> dict[str, Any]:
    try:
        row = conn.one(q.HEARTBEAT, **params)
    except DatabaseError as exc:
        code = sqlstate(exc)
        if code in (EP_UNKNOWN_VIDEO, EP_POSITION_OUT_OF_RANGE):
            metrics.heartbeat_rejected("video_not_found" if code == EP_UNKNOWN_VIDEO else "position_out_of_range")
        error = domain_error(exc, (EP_UNKNOWN_VIDEO, EP_POSITION_OUT_OF_RANGE))
        if error is None:
            raise
        raise error from exc
    assert row is not None
    return row


def _complete(conn: Conn, user_id: str, video_id: str, row: dict[str, Any]) -> dict[str, Any]:
    """The completing transaction's money: the reward entry, referral hooks, the outbox event."""
    granted: int = row["reward_micros"]
    withheld: int = row["withheld_micros"]
    entry_id: int | None = None
    if granted > 0:
        posted = ledger.post(
            conn,
            user_id=user_id,
            type="video_reward",
            amount=granted,
            idempotency_key=f"video_reward:{user_id}:{video_id}",
            source="progress",
            reference=video_id,
            metadata={"withheld_micros": withheld} if withheld else None,
        )
        entry_id = posted.entry_id
        conn.execute(q.ATTACH_REWARD, user_id=user_id, video_id=video_id, entry_id=entry_id)
        row["reward_entry_id"] = entry_id
        # Referral bonus and commission hang on the reward entry (commission is a share of it), so
        # a completion the daily cap withheld entirely (or a zero-reward video) triggers neither.
        bonuses.on_video_completed(conn, user_id, video_id, granted, entry_id)
    # A completed video is verified watching: the day's bonus and streak accrue with the first one.
    row["daily_bonus"] = bonuses.on_verified_watch(conn, user_id)
    outbox.emit(
        conn,
        "video_completed",
        {
            "user_id": user_id,
            "video_id": video_id,
            "reward": ledger.money(granted),
            "withheld": ledger.money(withheld),
            "reward_entry_id": entry_id,
            "completed_at": rfc3339(row["completed_at"]),
        },
        key=f"video_completed:{user_id}:{video_id}",
    )
    return ledger.balance(conn, user_id)


def _present_heartbeat(video_id: str, row: dict[str, Any], *, balance: dict[str, Any] | None) -> dict[str, Any]:
    status = row["status"]
    completed_at = row["completed_at"]
    out: dict[str, Any] = {
        "video_id": video_id,
        "accepted": status != "stale",
        "status": status,
        "credited_now_seconds": _seconds(row["credited_now"]) if status != "completion_due" else 0.0,
        "position_seconds": _seconds(row["position_seconds"]),
        "credited_seconds": _seconds(row["credited_seconds"]),
        "required_seconds": row["required_seconds"],
        "duration_seconds": row["duration_seconds"],
        "completed": completed_at is not None,
        "completed_at": completed_at,
        "reward": _reward(row) if completed_at is not None else None,
        "balance": None,
        # the day's bonus and streak when this completion was the day's first verified watching
        "daily_bonus": row.get("daily_bonus"),
    }
    if balance is not None:
        out["balance"] = {"available": ledger.money(balance["available"])}
    return out


def _reward(row: dict[str, Any]) -> dict[str, Any]:
    credited = row["reward_micros"] or 0
    withheld = row["withheld_micros"] or 0
    return {
        "credited": ledger.money(credited),
        "withheld": ledger.money(withheld),
        "withheld_reason": "daily_cap" if withheld else None,
        "entry_id": row["reward_entry_id"],
    }


def _present_progress(row: dict[str, Any]) -> dict[str, Any]:
    started = row["started_at"] is not None
    return {
        "video_id": row["video_id"],
        "title": row["title"],
        "video_active": row["active"],
        "duration_seconds": row["duration_seconds"],
        "required_seconds": required_seconds(row["duration_seconds"], row["required_watch_pct"]),
        "video_reward": None if row["video_reward_micros"] is None else ledger.money(row["video_reward_micros"]),
        "started": started,
        "position_seconds": _seconds(row["position_seconds"]),
        "credited_seconds": _seconds(row["credited_seconds"]),
        "playing": bool(row["playing"]),
        "heartbeats": row["heartbeats"] or 0,
        "started_at": row["started_at"],
        "last_heartbeat_at": row["last_heartbeat_at"],
        "completed": row["completed_at"] is not None,
        "completed_at": row["completed_at"],
        "reward": _reward(row) if row["completed_at"] is not None else None,
    }


def get_progress(conn: Conn, user_id: str, video_id: str) -> dict[str, Any]:
    """The user's progress on one video (``started: false`` before the first heartbeat); 404 for unknown videos."""
    row = conn.one(q.ONE, user_id=user_id, video_id=video_id)
    if row is None:
        raise NotFound("no such video", code=codes.VIDEO_NOT_FOUND)
    return _present_progress(row)


def list_progress(conn: Conn, user_id: str, *, limit: int, cursor: str | None, completed: bool | None) -> dict[str, Any]:
    """The user's videos, most recently started first, keyset-paginated."""
    after_us: int | None = None
    after_id: str | None = None
    if cursor is not None:
        key = decode_cursor(cursor, "progress", {"t": int, "id": str})
        after_us, after_id = key["t"], key["id"]
        try:
            after_id = str(uuid.UUID(after_id))
        except ValueError as exc:
            raise ValidationFailed("the cursor is not valid for this list; start again without it", code=codes.INVALID_CURSOR) from exc
    rows = conn.all(q.PAGE, user_id=user_id, after_us=after_us, after_id=after_id, completed=completed, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if more:
        last = rows[-1]
        next_cursor = encode_cursor(
            "progress", {"t": (last["started_at"] - _EPOCH) // dt.timedelta(microseconds=1), "id": last["video_id"]}
        )
    return {"items": [_present_progress(r) for r in rows], "next_cursor": next_cursor}
