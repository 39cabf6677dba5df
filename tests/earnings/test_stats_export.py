"""Earnings stats (fresh balance, period sums) and the whole-history export."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from functions.earnings import queries as eq
from functions.earnings import service as earnings
from functions.ledger import service as ledger
from shared.config import get_settings
from shared.db import Conn, Database, Query, get_db
from shared.http import dumps
from shared.models import money
from tests.helpers import Api

# Credits clear at once here: these tests are about other rules (clearing: tests/ledger/test_clearing.py).
pytestmark = pytest.mark.usefixtures("immediate_clearing")

# Loading thousands of entries for one user in a test needs two precautions that the product's own path
# (one entry per transaction, in a database autovacuum keeps analysed) does not:
# - One statement per chunk: every ledger_post updates the same balances row, and inside one transaction
#   each update lengthens that row's version chain, which each later lookup walks (quadratic).
# - Custom plans: another test's VACUUM ANALYZE can leave this user's partition recorded as empty, and
#   a generic plan cached while it holds a few rows scans the partition on every lookup as it grows.
# With both, 10,050 entries load in about 4 s; without them it took 9 s to over 30 s (a CI timeout).
BULK_CHUNK = 500
BULK = Query(
    "t_bulk_export",
    """SELECT count(*) FROM generate_series(CAST(:lo AS int), CAST(:hi AS int)) g,
              LATERAL ledger_post(CAST(:u AS uuid), CASE WHEN g % 10 = 0 THEN 'login_bonus' ELSE 'video_reward' END,
                                  2500 + g, 'export-' || g, 'test', 'ref-' || g) p""",
    prepared=False,
)


def _bulk(conn: Conn, user_id: str, n: int) -> int:
    """Post ``n`` entries for the user, committing every ``BULK_CHUNK``; returns how many were posted."""
    conn.script("SET plan_cache_mode = force_custom_plan")
    try:
        return sum(conn.value(BULK, u=user_id, lo=lo, hi=min(lo + BULK_CHUNK - 1, n)) for lo in range(1, n + 1, BULK_CHUNK))
    finally:
        conn.script("RESET plan_cache_mode")


def _post(user_id: str, type_: str, amount: int, key: str) -> None:
    with get_db().transaction() as conn:
        ledger.post(conn, user_id=user_id, type=type_, amount=amount, idempotency_key=key, source="test")


def test_stats_show_a_fresh_balance_and_sums_by_type(api: Api) -> None:
    user = api.signup()
    empty = api.get("/earnings/stats", user=user).get_json()
    assert empty["available"] == {"micros": 0, "formatted": "$0.00", "currency": "USD"}
    assert empty["periods"]["today"]["by_type"] == {}
    _post(user.id, "video_reward", 2_500, "s1")
    _post(user.id, "video_reward", 40_000, "s2")
    _post(user.id, "login_bonus", 10_000, "s3")
    _post(user.id, "payout_hold", -20_000, "s4")
    stats = api.get("/earnings/stats", user=user).get_json()
    assert stats["available"] == {"micros": 32_500, "formatted": "$0.0325", "currency": "USD"}
    assert stats["lifetime_earned"]["micros"] == 52_500
    assert stats["lifetime_paid_out"]["micros"] == 0
    assert stats["entry_count"] == 4
    assert stats["sums_cached"] is False
    for period in ("today", "last_7_days", "last_30_days"):
        sums = stats["periods"][period]
        assert sums["by_type"]["video_reward"] == {"micros": 42_500, "formatted": "$0.0425", "currency": "USD"}
        assert sums["by_type"]["login_bonus"]["micros"] == 10_000
        assert sums["by_type"]["payout_hold"]["micros"] == -20_000
        assert sums["earned"]["micros"] == 52_500
    assert stats["periods"]["today"]["since"].endswith("T00:00:00.000000Z")  # RFC 3339, UTC, always microseconds
    # unchanged: served from the instance cache; a new entry shows at once (the cache keys on the entry count)
    assert api.get("/earnings/stats", user=user).get_json()["sums_cached"] is True
    _post(user.id, "streak_bonus", 5_000, "s5")
    fresh = api.get("/earnings/stats", user=user).get_json()
    assert fresh["sums_cached"] is False
    assert fresh["periods"]["today"]["by_type"]["streak_bonus"]["micros"] == 5_000
    assert fresh["available"]["micros"] == 37_500
    other = api.signup()
    assert api.get("/earnings/stats", user=other).get_json()["available"]["micros"] == 0
    assert api.get("/earnings/stats?user_id=" + user.id, user=other).status_code == 422


def test_period_sums_read_only_the_date_index(api: Api, owner_conn: Conn) -> None:
    user = api.signup()
    assert _bulk(owner_conn, user.id, 300) == 300
    owner_conn.script("VACUUM ANALYZE earnings")
    explain = Query("t_explain_sums", "EXPLAIN " + eq.PERIOD_SUMS.sql, prepared=False)
    now = dt.datetime.now(dt.UTC)
    # In this small test database the user's partition holds little but this user's rows, where
    # a sequential scan is honestly cheaper; what we prove here is that the date index alone can
    # answer the query (index-only, no heap), which is the plan at the product's scale (bench/).
    owner_conn.script("SET enable_seqscan = off; SET enable_bitmapscan = off")
    plan = "\n".join(
        r[0]
        for r in owner_conn.rows(
            explain, user_id=user.id, today=now, since_7=now - dt.timedelta(days=6), since_30=now - dt.timedelta(days=29)
        )
    )
    assert "Index Only Scan using earnings_p" in plan and "created_at" in plan, plan
    assert "Seq Scan" not in plan and "Heap" not in plan, plan
    owner_conn.script("RESET enable_seqscan; RESET enable_bitmapscan")


def test_export_returns_the_whole_history_fast(api: Api, owner_conn: Conn) -> None:
    user = api.signup()
    n = 10_050
    assert _bulk(owner_conn, user.id, n) == n
    resp = api.get("/earnings/export", user=user)  # warm
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    resp = api.get("/earnings/export", user=user)
    data = resp.get_json()
    assert data["count"] == n
    assert len(data["items"]) == n
    assert data["user_id"] == user.id
    assert [i["seq"] for i in data["items"]] == list(range(n, 0, -1))
    newest, oldest = data["items"][0], data["items"][-1]
    assert newest["amount"] == money(2_500 + n)
    assert newest["balance_after"] == money(sum(2_500 + g for g in range(1, n + 1)))
    assert oldest["type"] == "video_reward"
    assert oldest["amount"] == money(2_501)
    assert oldest["reference"] == "ref-1"
    assert data["items"][n - 10]["type"] == "login_bonus"
    # the one timestamp style (RFC 3339, UTC, microseconds, Z) and the one JSON spacing (none)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", newest["created_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", data["generated_at"])
    created = dt.datetime.fromisoformat(newest["created_at"])
    assert created.utcoffset() == dt.timedelta(0)
    assert abs(dt.datetime.now(dt.UTC) - created) < dt.timedelta(minutes=10)
    assert resp.get_data(as_text=True) == dumps(data), "the export is compact JSON, key for key as the rest of the API"
    # the same items as the history pages, which add whether each is still pending (here: cleared at once)
    page = api.get("/earnings/?limit=3", user=user).get_json()
    assert [{k: v for k, v in i.items() if k not in ("pending", "clears_at", "awaiting")} for i in page["items"]] == data["items"][:3]
    assert all((i["pending"], i["clears_at"], i["awaiting"]) == (False, None, None) for i in page["items"])
    other = api.signup()
    theirs = api.get("/earnings/export", user=other).get_json()
    assert theirs["count"] == 0
    assert theirs["items"] == []
    assert theirs["user_id"] == other.id


def test_sql_and_python_money_strings_agree(owner_conn: Conn) -> None:
    values = [0, 1, 9, 10, 99, 2_500, 9_999, 10_000, 12_345, 100_000, 500_000, 999_999, 1_000_000, 1_500_000, 1_234_567_890, 10**15 + 7]
    values += [-v for v in values if v]
    q = Query("t_format", "SELECT format_micros(CAST(v AS bigint)) FROM unnest(CAST(:vals AS bigint[])) AS v", prepared=False)
    got = [r[0] for r in owner_conn.rows(q, vals=values)]
    assert got == [ledger.format_micros(v) for v in values]


# --- the export's two halves (functions/earnings/service.py, export) -------------------------------
def _without_generated_at(text: str) -> str:
    return re.sub(r'"generated_at":"[^"]*"', "", text)


@pytest.fixture
def long_history(api: Api, owner_conn: Conn, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A user with 301 entries, split from 100 on (an odd count: the halves differ in size); and the
    export read as one range, to compare the halves with."""
    user = api.signup()
    assert _bulk(owner_conn, user.id, 301) == 301
    monkeypatch.setattr(earnings, "EXPORT_SPLIT_MIN", 10**9)
    with get_db().connection() as conn:
        whole = earnings.export(conn, user.id)
    monkeypatch.setattr(earnings, "EXPORT_SPLIT_MIN", 100)
    assert whole.count('{"seq":') == 301
    return user.id, whole


def _ranges_read(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int, int]]:
    """Records each range the export reads: (after, upto, the connection's id)."""
    read: list[tuple[int, int, int]] = []
    real = earnings._export_range

    def recording(conn: Conn, user_id: str, after: int, upto: int) -> str | None:
        read.append((after, upto, id(conn.raw)))
        return real(conn, user_id, after, upto)

    monkeypatch.setattr(earnings, "_export_range", recording)
    return read


def test_a_long_export_reads_its_halves_on_two_connections(long_history: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    user_id, whole = long_history
    read = _ranges_read(monkeypatch)
    with get_db().connection() as conn:
        split = earnings.export(conn, user_id)
    assert _without_generated_at(split) == _without_generated_at(whole)
    assert sorted(r[:2] for r in read) == [(0, 150), (150, 301)]
    assert read[0][2] != read[1][2]  # two connections
    assert dumps(json.loads(split)) == split


def test_without_a_spare_connection_the_halves_are_read_one_after_the_other(
    long_history: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, whole = long_history
    read = _ranges_read(monkeypatch)
    single = Database(get_settings().model_copy(update={"db_pool_size": 1}))
    try:
        with single.connection() as conn:
            text = earnings.export(conn, user_id)
    finally:
        single.dispose()
    assert _without_generated_at(text) == _without_generated_at(whole)
    assert [r[:2] for r in read] == [(150, 301), (0, 150)] and len({r[2] for r in read}) == 1


def test_a_half_read_on_a_connection_that_is_behind_is_read_again(api: Api, owner_conn: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spare connection that misses entries (as a replica connection behind the first one would)
    is not trusted: its half is read again on the first connection."""
    user = api.signup()
    behind = get_db()._pool.connect()
    stale = Conn(behind.dbapi_connection, get_settings())
    stale.script("BEGIN ISOLATION LEVEL REPEATABLE READ")
    stale.script("SELECT 1 FROM earnings LIMIT 1")  # its snapshot: none of the entries below
    try:
        assert _bulk(owner_conn, user.id, 301) == 301

        @contextmanager
        def spare(self: Database) -> Iterator[Conn]:
            yield stale

        monkeypatch.setattr(Database, "spare_connection", spare)
        monkeypatch.setattr(earnings, "EXPORT_SPLIT_MIN", 100)
        read = _ranges_read(monkeypatch)
        with get_db().connection() as conn:
            text = earnings.export(conn, user.id)
            first = id(conn.raw)
    finally:
        stale.script("ROLLBACK")
        behind.close()
    data = json.loads(text)
    assert data["count"] == 301 and [i["seq"] for i in data["items"]] == list(range(301, 0, -1))
    assert data["items"][-1]["reference"] == "ref-1"
    # the older half on the stale connection, then again on the first one
    assert sorted(read) == sorted([(150, 301, first), (0, 150, id(stale.raw)), (0, 150, first)])
