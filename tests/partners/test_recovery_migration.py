"""Migrations 0110 (recoveries) and 0111 (partners) on a database with money in it.

The database is migrated to 0101 and written the way that release did (balances, pending credits, a
cleared credit, a paid and an in-flight payout); then the rest is applied. Every bucket must be as it
was, the ledger must verify (what `python main.py verify-ledger` checks), and recovery must work on the
old entries afterwards: a cleared credit becomes owed, later clearings pay it off first.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from functions.ledger import service as ledger
from shared.db import Query
from tests.fixtures.migrations import OLD_PAYOUTS_SQL, OLD_USERS_SQL

FIRST_NEW = 110

# The 0101 release's way of writing money: ledger_post / ledger_post_pending / ledger_clear_due / payout holds and
# ledger_settle_payout. u1: a $20 adjustment, a $5 credit that cleared, a due and a future pending credit, a paid $10
# payout and an in-flight $5 one. u2: one pending credit only.
OLD_RELEASE_SQL = (
    OLD_USERS_SQL
    + """
SELECT count(*) FROM ledger_post('{u1}', 'adjustment', 20000000, 'adjustment:1', 'admin');
SELECT count(*) FROM ledger_post_pending('{u1}', 'video_reward', 5000000, 'video_reward:cleared', 'progress', NULL, NULL,
                                         now() - interval '1 hour', NULL);
SELECT ledger_clear_due(100, now());
SELECT count(*) FROM ledger_post_pending('{u1}', 'video_reward', 700, 'video_reward:due', 'progress', NULL, NULL,
                                         now() + interval '2 hours', NULL);
SELECT count(*) FROM ledger_post_pending('{u1}', 'video_reward', 300, 'video_reward:later', 'progress', NULL, NULL,
                                         now() + interval '30 days', NULL);
SELECT count(*) FROM ledger_post_pending('{u2}', 'login_bonus', 1000, 'login_bonus:1', 'progress', NULL, NULL,
                                         now() + interval '2 hours', NULL);
"""
    + OLD_PAYOUTS_SQL
    + """
SELECT ledger_settle_payout('{u1}', '{paid}', 10000000);
UPDATE payout_requests SET status = 'approved', decided_at = now(), last_actor = 'test' WHERE id = '{open}';
UPDATE payout_requests SET status = 'submitted', claimed_at = now(), next_check_at = now(), last_actor = 'test' WHERE id = '{open}';
"""
)

BUCKETS = Query(
    "t_recmig_buckets",
    "SELECT user_id::text AS user_id, available, pending, held, lifetime_earned, lifetime_paid_out, entry_count FROM balances",
    prepared=False,
)
RECOVERY = Query("t_recmig_recovery", "SELECT recovery FROM balances WHERE user_id = CAST(:u AS uuid)", prepared=False)
ENTRY = Query("t_recmig_entry", "SELECT id FROM earnings WHERE user_id = CAST(:u AS uuid) AND idempotency_key = :k", prepared=False)
TAIL = Query(
    "t_recmig_tail",
    "SELECT type, amount FROM earnings WHERE user_id = CAST(:u AS uuid) ORDER BY seq DESC LIMIT :n",
    prepared=False,
)
PAID = Query(
    "t_recmig_paid",
    "UPDATE payout_requests SET status = 'paid', completed_at = now(), last_actor = 'test' WHERE id = CAST(:id AS uuid)",
    prepared=False,
)
PARTNER_TABLES = Query(
    "t_recmig_tables",
    "SELECT count(*) FROM pg_tables WHERE tablename IN ('partners', 'partner_secrets', 'partner_rewards', 'partner_callbacks')",
    prepared=False,
)


def _verified(conn: Any) -> None:
    report = ledger.verify(conn)
    assert report["ok"], {k: v for k, v in report.items() if v}


def test_recoveries_and_partners_arrive_on_a_ledger_with_money_in_it(old_release: Any) -> None:
    db = old_release(FIRST_NEW)
    conn = db.conn
    ids = {k: str(uuid.uuid4()) for k in ("u1", "u2", "m", "paid", "open")}
    conn.script(OLD_RELEASE_SQL.format(**ids))
    before = {r["user_id"]: r for r in conn.all(BUCKETS)}
    u1 = before[ids["u1"]]
    assert (u1["available"], u1["pending"], u1["held"], u1["lifetime_paid_out"]) == (10_000_000, 1_000, 5_000_000, 10_000_000)

    applied = db.upgrade()
    assert {110, 111} <= set(applied)
    assert conn.value(PARTNER_TABLES) == 4

    # every bucket as it was, nobody owes anything, and the ledger verifies (entries = balances, hash chains)
    assert {r["user_id"]: r for r in conn.all(BUCKETS)} == before
    assert conn.value(RECOVERY, u=ids["u1"]) == 0 and conn.value(RECOVERY, u=ids["u2"]) == 0
    _verified(conn)

    # recovery works on the old entries: the cleared $5 (since paid out) is owed, the future pending credit clawed back
    cleared = int(conn.value(ENTRY, u=ids["u1"], k="video_reward:cleared"))
    later = int(conn.value(ENTRY, u=ids["u1"], k="video_reward:later"))
    owed = ledger.recover(conn, user_id=ids["u1"], entry_id=cleared, source="test", metadata={"reason": "chargeback"})
    clawed = ledger.recover(conn, user_id=ids["u1"], entry_id=later, source="test", metadata={"reason": "chargeback"})
    assert owed["recovered"] is True and clawed["recovered"] is False
    after = {r["user_id"]: r for r in conn.all(BUCKETS)}[ids["u1"]]
    assert (after["available"], after["pending"], after["held"]) == (10_000_000, 700, 5_000_000), "never taken from available"
    assert conn.value(RECOVERY, u=ids["u1"]) == 5_000_000
    _verified(conn)

    # the next clearing pays the recovery off first; the in-flight payout still settles
    assert ledger.clear_due(conn, limit=100, now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)) == 2  # u1's 700 and u2's 1000
    assert [(r["type"], int(r["amount"])) for r in conn.all(TAIL, u=ids["u1"], n=2)] == [("recovery_payment", -700), ("clearing", 700)]
    assert conn.value(RECOVERY, u=ids["u1"]) == 5_000_000 - 700
    conn.execute(PAID, id=ids["open"])
    ledger.settle_payout(conn, ids["u1"], ids["open"], 5_000_000)
    final = {r["user_id"]: r for r in conn.all(BUCKETS)}
    assert (final[ids["u1"]]["available"], final[ids["u1"]]["held"], final[ids["u1"]]["lifetime_paid_out"]) == (10_000_000, 0, 15_000_000)
    assert (final[ids["u2"]]["available"], final[ids["u2"]]["pending"]) == (1_000, 0)
    _verified(conn)
