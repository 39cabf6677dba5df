"""Earnings history, stats and export: only ever the caller's own entries, money as micros + a string."""

from __future__ import annotations

import contextvars
import datetime as dt
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from functions.earnings import queries as q
from functions.earnings.models import HistoryQuery, end_of, start_of
from functions.ledger.service import money
from shared import error_codes as codes
from shared.db import Conn, get_db, read_replica, replica_configured
from shared.errors import NotFound
from shared.models import rfc3339
from shared.pagination import decode_cursor, encode_cursor

# Period sums may be up to this old (per instance). A cached value is also dropped as soon as the
# user's entry count moves, so a new credit shows at once; the TTL only bounds window sliding.
STATS_TTL_S = 5 * 60
STATS_CACHE_MAX_USERS = 20_000
_MAX_SEQ = 2**63 - 1
T = TypeVar("T")
EARNING_TYPES = ("video_reward", "login_bonus", "streak_bonus", "referral_bonus", "referral_commission", "adjustment", "partner_reward")
PERIODS = (("today", 1), ("last_7_days", 7), ("last_30_days", 30))
# From this many entries on, the export reads its two halves at once on two connections (export()).
# Below it one statement takes a few milliseconds and a second connection would not pay for itself.
EXPORT_SPLIT_MIN = 2_000
# Pending credits listed by /earnings/stats (soonest to clear first).
PENDING_ENTRIES_SHOWN = 100


def own_read(user_id: str, fn: Callable[[Conn], T], *, primary_count: int | None = None) -> T:
    """``fn`` on the replica when one is configured and already has every entry of the user that the
    primary has (the entry count, read on the primary first unless given); else on the primary."""
    if not replica_configured():
        with get_db().connection() as conn:
            return fn(conn)
    if primary_count is None:
        with get_db().connection() as conn:
            primary_count = int(conn.value(q.ENTRY_COUNT, user_id=user_id) or 0)
    wanted = primary_count

    def guarded(conn: Conn) -> tuple[int, T]:
        return int(conn.value(q.ENTRY_COUNT, user_id=user_id) or 0), fn(conn)

    return read_replica(guarded, fresh=lambda r: r[0] >= wanted)[1]


def history(conn: Conn, user_id: str, query: HistoryQuery) -> str:
    """One page of the user's entries, newest first (keyset on seq), as JSON text built by PostgreSQL."""
    before = _MAX_SEQ
    if query.cursor is not None:
        before = decode_cursor(query.cursor, "earnings", {"seq": int})["seq"]
        if not 1 <= before <= _MAX_SEQ:
            before = 1  # a positioned-past-the-end cursor: an empty page, not an error
    row = conn.one(
        q.HISTORY_PAGE,
        user_id=user_id,
        before_seq=before,
        type=query.type,
        from_ts=start_of(query.from_) if query.from_ else None,
        to_ts=end_of(query.to) if query.to else None,
        limit=query.limit,
    )
    assert row is not None
    cursor = encode_cursor("earnings", {"seq": row["last_seq"]}) if row["more"] else None
    return '{"items":' + row["items"] + ',"next_cursor":' + json.dumps(cursor) + "}"


@dataclass(frozen=True)
class _Sums:
    expires_at: float
    entry_count: int
    day: dt.date
    periods: dict[str, Any]


_lock = threading.Lock()
_sums: dict[str, _Sums] = {}


def clear_stats_cache() -> None:
    with _lock:
        _sums.clear()


def _period_sums(conn: Conn, user_id: str, today: dt.date) -> dict[str, Any]:
    midnight = dt.datetime.combine(today, dt.time(), dt.UTC)
    starts = {name: midnight - dt.timedelta(days=days - 1) for name, days in PERIODS}
    rows = conn.all(q.PERIOD_SUMS, user_id=user_id, today=starts["today"], since_7=starts["last_7_days"], since_30=starts["last_30_days"])
    out: dict[str, Any] = {}
    for name, _days in PERIODS:
        by_type = {r["type"]: int(r[name]) for r in rows if int(r[name]) != 0}
        earned = sum(v for t, v in by_type.items() if t in EARNING_TYPES)
        out[name] = {
            "since": starts[name],
            "earned": money(earned),
            "by_type": {t: money(v) for t, v in sorted(by_type.items())},
        }
    return out


def stats(conn: Conn, user_id: str, *, now: dt.datetime | None = None) -> dict[str, Any]:
    """The fresh balance, lifetime totals, and today / 7-day / 30-day sums by type (UTC days)."""
    bal = conn.one(q.BALANCE, user_id=user_id)
    if bal is None:
        raise NotFound("no such user", code=codes.UNKNOWN_USER)
    now = now or dt.datetime.now(dt.UTC)
    today = now.date()
    mono = time.monotonic()
    cached = _sums.get(user_id)
    hit = cached is not None and cached.expires_at > mono and cached.entry_count == bal["entry_count"] and cached.day == today
    if hit:
        assert cached is not None
        periods = cached.periods
    else:
        # The sums come from the replica when it holds all of the user's entries; the balance above
        # is always the primary's.
        periods = own_read(user_id, lambda c: _period_sums(c, user_id, today), primary_count=int(bal["entry_count"]))
        with _lock:
            if len(_sums) >= STATS_CACHE_MAX_USERS:
                for key in [k for k, v in _sums.items() if v.expires_at <= mono] or list(_sums):
                    _sums.pop(key, None)
            _sums[user_id] = _Sums(mono + STATS_TTL_S, bal["entry_count"], today, periods)
    pending = conn.all(q.PENDING_ENTRIES, user_id=user_id, limit=PENDING_ENTRIES_SHOWN + 1)
    return {
        "available": money(bal["available"]),
        "pending": money(bal["pending"]),
        "held": money(bal["held"]),
        # each pending credit and when it clears (null while it awaits a condition, e.g. a referral)
        "pending_entries": [
            {
                "seq": r["seq"],
                "entry_id": r["entry_id"],
                "type": r["type"],
                "amount": money(r["amount"]),
                "clears_at": r["clears_at"],
                "awaiting": _awaiting_kind(r["awaiting"]),
            }
            for r in pending[:PENDING_ENTRIES_SHOWN]
        ],
        "pending_entries_truncated": len(pending) > PENDING_ENTRIES_SHOWN,
        "lifetime_earned": money(bal["lifetime_earned"]),
        "lifetime_paid_out": money(bal["lifetime_paid_out"]),
        "entry_count": bal["entry_count"],
        "periods": periods,
        "sums_cached": hit,
        "as_of": now,
    }


def _awaiting_kind(awaiting: str | None) -> str | None:
    """What a pending credit waits for, without the other user's id (``referral:<id>`` -> ``referral_qualification``)."""
    if awaiting is None:
        return None
    return "referral_qualification" if awaiting.startswith("referral:") else "condition"


def export(conn: Conn, user_id: str) -> str:
    """The user's whole history as JSON text; PostgreSQL builds the items.

    A history of ``EXPORT_SPLIT_MIN`` entries or more is read as two halves at once: the older half
    on a spare connection of the same pool, on a thread that is joined before this returns, the newer
    one on ``conn``. Formatting the items is nearly all of an export's time and all of it PostgreSQL
    CPU, so on two cores the two halves take about half as long as one statement (bench/README.md,
    export). Without a spare connection (``Database.spare_connection``) the halves are read one after
    the other on ``conn``. The export is as of the entry count read first: entries are never changed,
    so entries up to that count are the same on every connection, and a half that comes back short
    (a spare replica connection behind ``conn``) is read again on ``conn``."""
    count = conn.value(q.ENTRY_COUNT, user_id=user_id)
    upto = int(count or 0)
    # newest first: (after, upto] ranges of seq, and what has been read of each (None: not yet, or short)
    ranges = [(upto // 2, upto), (0, upto // 2)] if upto >= EXPORT_SPLIT_MIN and conn.db is not None else [(0, upto)]
    texts: list[str | None] = [None] * len(ranges)
    if len(ranges) == 2:
        assert conn.db is not None
        with conn.db.spare_connection() as spare:
            if spare is not None:
                with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-half") as pool:
                    (after, until) = ranges[1]
                    older = pool.submit(contextvars.copy_context().run, _export_range, spare, user_id, after, until)
                    texts[0] = _export_range(conn, user_id, *ranges[0])
                    texts[1] = older.result()
    for i, (after, until) in enumerate(ranges):
        if texts[i] is None:  # not read yet, or short on the spare: conn has every entry it counted
            texts[i] = _export_range(conn, user_id, after, until)
        if texts[i] is None:
            raise RuntimeError(f"the export of {user_id} read fewer entries than its count {upto}")
    items = ",".join(t for t in texts if t)
    return (
        f'{{"user_id":{json.dumps(user_id)},"generated_at":"{rfc3339(dt.datetime.now(dt.UTC))}"'
        f',"count":{"null" if count is None else upto},"items":[{items}]}}'
    )


def _export_range(conn: Conn, user_id: str, after: int, upto: int) -> str | None:
    """Entries ``after < seq <= upto``, newest first, as comma-separated JSON objects; None when the
    connection does not have all of them."""
    row = conn.one(q.EXPORT_RANGE, user_id=user_id, after=after, upto=upto)
    assert row is not None
    return str(row["items"]) if int(row["n"]) == upto - after else None
