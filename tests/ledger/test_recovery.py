"""The recovery bucket: a cleared credit taken back is owed, later clearings pay it off first, nothing goes negative."""

from __future__ import annotations

from typing import Any

import pytest

from functions.ledger import service as ledger
from shared.db import Query, get_db
from shared.errors import NotFound
from tests.helpers import Api
from tests.ledger.test_clearing import clear_all_due, post_due

RECOVERY = Query("t_recovery_bucket", "SELECT available, pending, recovery FROM balances WHERE user_id = CAST(:u AS uuid)", prepared=False)
ENTRIES = Query(
    "t_recovery_entries",
    "SELECT type, amount, original_entry_id FROM earnings WHERE user_id = CAST(:u AS uuid) ORDER BY seq",
    prepared=False,
)


def state(user_id: str) -> tuple[int, int, int]:
    with get_db().connection() as conn:
        row = conn.one(RECOVERY, u=user_id)
    assert row is not None
    return int(row["available"]), int(row["pending"]), int(row["recovery"])


def recover(user_id: str, entry_id: int) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return ledger.recover(conn, user_id=user_id, entry_id=entry_id, source="test", metadata={"reason": "chargeback"})


def test_recover_claws_back_pending_and_owes_back_cleared_then_clearings_pay_it_off(api: Api) -> None:
    user = api.signup().id
    cleared = post_due(user, 700, "rec-a")
    clear_all_due()
    assert state(user) == (700, 0, 0)
    pending = post_due(user, 50, "rec-b")  # due at once, but not cleared yet

    first = recover(user, pending)
    assert first["recovered"] is False and first["duplicate"] is False and state(user) == (700, 0, 0)
    owed = recover(user, cleared)
    assert owed["recovered"] is True and owed["reversed_amount"] == 700
    assert state(user) == (700, 0, 700), "available is never taken silently: the amount is owed"
    assert recover(user, cleared)["duplicate"] is True and state(user) == (700, 0, 700)
    # a reversal entry cannot be recovered, and an unknown entry is 404
    with pytest.raises(ledger.NotACredit):
        recover(user, int(owed["entry_id"]))
    with pytest.raises(NotFound):
        recover(user, 10**15)

    # the next clearings pay the recovery off first, in part and then in full
    post_due(user, 300, "rec-c")
    clear_all_due()
    assert state(user) == (700, 0, 400)
    post_due(user, 1_000, "rec-d")
    clear_all_due()
    assert state(user) == (700 + 600, 0, 0)
    with get_db().connection() as conn:
        types = [(r["type"], int(r["amount"])) for r in conn.all(ENTRIES, u=user)]
        assert types[-5:] == [
            ("clearing", 300),
            ("recovery_payment", -300),
            ("video_reward", 1_000),
            ("clearing", 1_000),
            ("recovery_payment", -400),
        ]
        assert ledger.verify(conn, user_id=user)["ok"]


def test_verify_ledger_notices_a_recovery_bucket_that_disagrees_with_its_entries(api: Api, owner_conn: Any) -> None:
    user = api.signup().id
    entry = post_due(user, 100, "rec-v")
    clear_all_due()
    recover(user, entry)
    owner_conn.execute(
        Query("t_recovery_tamper", "UPDATE balances SET recovery = 1 WHERE user_id = CAST(:u AS uuid)", prepared=False), u=user
    )
    with get_db().connection() as conn:
        result = ledger.verify(conn, user_id=user)
    assert not result["ok"] and result["balance_problems"][0]["entries_recovery"] == 100
    # put it right again: the database is shared with the rest of the suite (reconcile checks every user)
    owner_conn.execute(
        Query("t_recovery_untamper", "UPDATE balances SET recovery = 100 WHERE user_id = CAST(:u AS uuid)", prepared=False), u=user
    )
    with get_db().connection() as conn:
        assert ledger.verify(conn, user_id=user)["ok"]
