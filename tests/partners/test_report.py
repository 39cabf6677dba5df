"""The finance report adds up against the ledger: per partner and day, credited, reversed and paid out equal
the partner_reward, reversal/recovery and clearing entries of that partner's rewards."""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared.db import Query, get_db
from tests.helpers import Api, error_code
from tests.ledger.test_clearing import clear_all_due
from tests.partners.support import new_partner, offerwall_query, set_secret, verify_ok
from tests.partners.test_callbacks import SECRET, later, ow

# What the ledger says about one partner's rewards: credits, what took them back, what cleared.
LEDGER_TOTALS = Query(
    "t_partner_ledger_totals",
    """
    SELECT
      (SELECT coalesce(sum(amount), 0) FROM earnings WHERE type = 'partner_reward' AND source = 'partner:' || :p) AS credited,
      (SELECT coalesce(-sum(e.amount), 0) FROM earnings e
        WHERE e.type IN ('reversal', 'recovery')
          AND e.original_entry_id IN (SELECT id FROM earnings WHERE type = 'partner_reward' AND source = 'partner:' || :p)) AS reversed,
      (SELECT coalesce(-sum(e.amount), 0) FROM earnings e
        WHERE e.type = 'recovery'
          AND e.original_entry_id IN (SELECT id FROM earnings WHERE type = 'partner_reward' AND source = 'partner:' || :p)) AS recovered,
      (SELECT coalesce(sum(e.amount), 0) FROM earnings e
        WHERE e.type = 'clearing'
          AND e.original_entry_id IN (SELECT id FROM earnings WHERE type = 'partner_reward' AND source = 'partner:' || :p)) AS paid_out,
      (SELECT coalesce(sum((metadata->>'revenue_micros')::bigint), 0) FROM earnings
        WHERE type = 'partner_reward' AND source = 'partner:' || :p) AS revenue
    """,
    prepared=False,
)


def test_the_finance_report_adds_up_against_the_ledger(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    finance = api.staff(owner_conn, "finance")
    pids = [new_partner(api, admin, "offerwall"), new_partner(api, admin, "offerwall", reward_micros_per_unit=2_000)]
    users = [api.signup(), api.signup()]
    for pid in pids:
        set_secret(api, admin, pid, SECRET)

    def send(pid: str, user: Any, txn: str, amount: int, status: str = "credit") -> None:
        resp = ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id=txn, amount=amount, status=status))
        assert resp.status_code == 200, resp.get_data(as_text=True)

    for i, pid in enumerate(pids):
        for j, user in enumerate(users):
            send(pid, user, f"early-{j}", 100 * (i + 1) + j)
    clear_all_due(now=later())
    for i, pid in enumerate(pids):
        for j, user in enumerate(users):
            send(pid, user, f"late-{j}", 10 * (i + 1) + j)
    send(pids[0], users[0], "early-0", 100, "reversal")  # cleared: a recovery
    send(pids[1], users[1], "late-1", 21, "reversal")  # pending: a clawback
    send(pids[0], users[0], "early-0", 100, "reversal")  # a duplicate counts once

    today = dt.datetime.now(dt.UTC).date()
    resp = api.get(f"/admin/partner-report?from={today - dt.timedelta(days=1)}&to={today}", user=finance)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    report = resp.get_json()
    with get_db().connection() as conn:
        for pid in pids:
            rows = [r for r in report["items"] if r["partner_id"] == pid]
            assert len(rows) == 1 and rows[0]["day"] == today.isoformat()  # everything happened today
            row = rows[0]
            ledger = conn.one(LEDGER_TOTALS, p=pid)
            assert ledger is not None
            for field in ("credited", "reversed", "recovered", "paid_out", "revenue"):
                assert row[field]["micros"] == int(ledger[field]), (pid, field, row[field], ledger[field])
            assert row["rewards"] == 4 and row["reversals"] == 1
            revenue_reversed = row["revenue_reversed"]["micros"]
            assert row["margin"]["micros"] == (int(ledger["revenue"]) - revenue_reversed) - (
                int(ledger["credited"]) - int(ledger["reversed"])
            )
    mine = sorted((r for r in report["items"] if r["partner_id"] in pids), key=lambda r: pids.index(r["partner_id"]))
    # the configured rates: partner 0 pays 1,000 micros per coin to the user, partner 1 2,000; revenue 1,500 each
    assert [r["credited"]["micros"] for r in mine] == [(100 + 101 + 10 + 11) * 1_000, (200 + 201 + 20 + 21) * 2_000]
    assert [r["revenue"]["micros"] for r in mine] == [(100 + 101 + 10 + 11) * 1_500, (200 + 201 + 20 + 21) * 1_500]
    assert [r["paid_out"]["micros"] for r in mine] == [(100 + 101) * 1_000, (200 + 201) * 2_000]
    assert [r["reversed"]["micros"] for r in mine] == [100 * 1_000, 21 * 2_000]
    assert [r["recovered"]["micros"] for r in mine] == [100 * 1_000, 0]
    # the totals are the sum of the rows (of every partner in range)
    for field in ("credited", "reversed", "paid_out", "revenue", "margin"):
        assert report["totals"][field]["micros"] == sum(r[field]["micros"] for r in report["items"])
    for user in users:
        verify_ok(user.id)

    one = api.get(f"/admin/partner-report?from={today}&to={today}&partner_id={pids[1]}", user=finance).get_json()
    assert [r["partner_id"] for r in one["items"]] == [pids[1]]
    backwards = api.get(f"/admin/partner-report?from={today}&to={today - dt.timedelta(days=1)}", user=finance)
    assert backwards.status_code == 422 and error_code(backwards) == "invalid_range"
    assert api.get(f"/admin/partner-report?from={today}&to={today}", user=api.signup()).status_code == 403
