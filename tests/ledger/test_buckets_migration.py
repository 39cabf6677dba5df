"""Migration 0060 (balance buckets) on a database with data in it: migrate to the previous version,
write money the way the previous release did, then apply the new migrations."""

from __future__ import annotations

import uuid
from typing import Any

from functions.ledger import service as ledger
from shared.db import Query
from tests.fixtures.migrations import OLD_PAYOUTS_SQL, OLD_USERS_SQL

FIRST_NEW = 60

OLD_RELEASE_SQL = (
    OLD_USERS_SQL
    + """
SELECT count(*) FROM ledger_post('{u1}', 'video_reward', 5000000, 'video_reward:1', 'progress');
SELECT count(*) FROM ledger_post('{u1}', 'adjustment', 20000000, 'adjustment:1', 'admin');
SELECT count(*) FROM ledger_post('{u2}', 'video_reward', 3000, 'video_reward:2', 'progress');
"""
    + OLD_PAYOUTS_SQL
    + """
SELECT ledger_record_paid_out('{u1}', 10000000);
"""
)

OLD_BALANCES = Query(
    "t_mig_old_balances",
    "SELECT user_id::text AS user_id, available, lifetime_earned, lifetime_paid_out FROM balances",
    prepared=False,
)
BALANCES = Query(
    "t_mig_balances",
    "SELECT user_id::text AS user_id, available, pending, held, lifetime_earned, lifetime_paid_out, entry_count FROM balances",
    prepared=False,
)
ENTRY_TYPES = Query(
    "t_mig_entries",
    "SELECT type, amount, reference FROM earnings WHERE user_id = CAST(:u AS uuid) ORDER BY seq",
    prepared=False,
)
NEW_PENDING = Query(
    "t_mig_new_pending",
    """SELECT entry_id FROM ledger_post_pending(CAST(:u AS uuid), 'video_reward', 700, 'after', 'progress', NULL, NULL,
                                                  now() + interval '1 hour', NULL)""",
    prepared=False,
)


def test_existing_balances_become_available_and_paid_payouts_reach_the_ledger(old_release: Any) -> None:
    db = old_release(FIRST_NEW)
    conn = db.conn
    ids = {k: str(uuid.uuid4()) for k in ("u1", "u2", "m", "paid", "open")}
    conn.script(OLD_RELEASE_SQL.format(**ids))
    before = {r["user_id"]: r for r in conn.all(OLD_BALANCES)}
    assert before[ids["u1"]]["available"] == 10_000_000 and before[ids["u1"]]["lifetime_paid_out"] == 10_000_000

    db.upgrade()

    after = {r["user_id"]: r for r in conn.all(BALANCES)}
    u1, u2 = after[ids["u1"]], after[ids["u2"]]
    # existing money is available, the open payout's hold is held, the paid one left the ledger
    assert (u1["available"], u1["pending"], u1["held"], u1["lifetime_paid_out"]) == (10_000_000, 0, 5_000_000, 10_000_000)
    assert (u2["available"], u2["pending"], u2["held"]) == (3_000, 0, 0)
    assert u1["lifetime_earned"] == before[ids["u1"]]["lifetime_earned"]
    assert conn.all(ENTRY_TYPES, u=ids["u1"])[-1] == {"type": "payout_paid", "amount": -10_000_000, "reference": ids["paid"]}
    report = ledger.verify(conn)
    assert report["ok"], report

    # the chain goes on from the old entries, with the new columns hashed
    conn.value(NEW_PENDING, u=ids["u2"])
    report = ledger.verify(conn)
    assert report["ok"], report
    assert {r["user_id"]: r for r in conn.all(BALANCES)}[ids["u2"]]["pending"] == 700
