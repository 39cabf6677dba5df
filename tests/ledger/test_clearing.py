"""Balance buckets: credits wait in pending, the clearing job moves them to available exactly once,
clawback reverses what is still pending, and verify-ledger checks every bucket (migration 0060)."""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from functions.ledger import service as ledger
from functions.maintenance import service as maintenance
from functions.payouts import flows as payouts
from functions.payouts.models import PayoutCreateBody
from shared.config import get_settings
from shared.db import Conn, Query, _session_setup, connect_url, get_db
from tests.helpers import PASSWORD, Api, error_code
from tests.payouts.test_requests import payee

ENTRIES = Query(
    "t_clearing_entries",
    """SELECT id, seq, type, amount, pending, pending_after, held_after, original_entry_id
         FROM earnings WHERE user_id = CAST(:u AS uuid) ORDER BY seq""",
    prepared=False,
)
PENDING_ROWS = Query(
    "t_clearing_pending_rows",
    "SELECT entry_id, amount, clears_at, awaiting FROM pending_credits WHERE user_id = CAST(:u AS uuid) ORDER BY seq",
    prepared=False,
)
AUDIT = Query(
    "t_clearing_audit",
    "SELECT action, target_id, reason FROM audit_log WHERE subject_user_id = CAST(:u AS uuid) ORDER BY id",
    prepared=False,
)
# A credit already due, posted as the owner (the app can only post clearing times the settings give).
POST_DUE = Query(
    "t_clearing_post_due",
    """SELECT entry_id FROM ledger_post_pending(CAST(:u AS uuid), 'video_reward', CAST(:amount AS bigint), :key, 'test', NULL, NULL,
                                                  now() - interval '1 second', NULL)""",
    prepared=False,
)


@contextmanager
def owner() -> Iterator[Conn]:
    """A fresh schema-owner connection (the clearing job's role), in autocommit."""
    raw = _session_setup(connect_url(os.environ["MIGRATE_DATABASE_URL"]), get_settings())
    try:
        yield Conn(raw, get_settings())
    finally:
        raw.close()


def concurrently(*targets: Callable[[], object]) -> list[BaseException]:
    """Runs each target in its own thread, all at once; returns what they raised (an exception in a
    thread would otherwise only be printed)."""
    errors: list[BaseException] = []

    def run(target: Callable[[], object]) -> None:
        try:
            target()
        except BaseException as exc:  # collected: the caller asserts on them
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def balance(user_id: str) -> dict[str, Any]:
    with get_db().connection() as conn:
        return ledger.balance(conn, user_id)


def verify(user_id: str) -> dict[str, Any]:
    with get_db().connection() as conn:
        return ledger.verify(conn, user_id=user_id)


def credit(user_id: str, amount: int, key: str, type_: str = "video_reward") -> ledger.Posted:
    with get_db().transaction() as conn:
        return ledger.post(conn, user_id=user_id, type=type_, amount=amount, idempotency_key=key, source="test")


def post_due(user_id: str, amount: int, key: str) -> int:
    with owner() as conn:
        return int(conn.value(POST_DUE, u=user_id, amount=amount, key=key))


def clear_all_due(*, now: dt.datetime | None = None, limit: int = 1000) -> int:
    with owner() as conn:
        total = 0
        while (n := ledger.clear_due(conn, limit=limit, now=now)) > 0:
            total += n
        return total


def reverse(user_id: str, entry_id: int) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return ledger.reverse(conn, user_id=user_id, entry_id=entry_id, source="test", metadata={"reason": "test"})


# --- pending, clearing ------------------------------------------------------------------------------
def test_a_credit_waits_in_pending_and_clears_exactly_once(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    before = dt.datetime.now(dt.UTC)
    posted = credit(user.id, 5_000, "reward-1")
    bal = balance(user.id)
    assert (bal["pending"], bal["available"], bal["held"], bal["lifetime_earned"]) == (5_000, 0, 0, 5_000)
    [row] = owner_conn.all(PENDING_ROWS, u=user.id)
    hours = get_settings().clearing_video_reward_hours
    assert row["entry_id"] == posted.entry_id and row["awaiting"] is None
    assert before + dt.timedelta(hours=hours) <= row["clears_at"] <= dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
    # payouts draw only on available
    with pytest.raises(ledger.InsufficientFunds):
        credit(user.id, -5_000, "hold-1", type_="payout_hold")
    # not due yet: nothing moves
    clear_all_due()
    assert balance(user.id)["pending"] == 5_000
    # due: it clears once, however often the job runs
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours, minutes=1)
    clear_all_due(now=later)
    clear_all_due(now=later)
    bal = balance(user.id)
    assert (bal["pending"], bal["available"], bal["lifetime_earned"]) == (0, 5_000, 5_000)
    entries = owner_conn.all(ENTRIES, u=user.id)
    assert [(e["type"], e["amount"], e["pending"], e["original_entry_id"]) for e in entries] == [
        ("video_reward", 5_000, True, None),
        ("clearing", 5_000, False, posted.entry_id),
    ]
    assert [(e["pending_after"], e["held_after"]) for e in entries] == [(5_000, 0), (0, 0)]
    assert owner_conn.all(PENDING_ROWS, u=user.id) == []
    assert verify(user.id)["ok"]


def test_adjustments_and_zero_periods_are_available_at_once(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    user = api.signup()
    credit(user.id, 1_000, "adj-1", type_="adjustment")
    monkeypatch.setenv("CLEARING_VIDEO_REWARD_HOURS", "0")
    get_settings.cache_clear()
    credit(user.id, 2_000, "reward-now")
    bal = balance(user.id)
    assert (bal["pending"], bal["available"]) == (0, 3_000)
    assert verify(user.id)["ok"]


def test_the_maintenance_task_clears_due_entries(api: Api) -> None:
    user = api.signup()
    post_due(user.id, 4_000, "due-1")
    outcome = maintenance.run_task("clearing", {"batch_size": 2})
    assert outcome["ran"] and outcome["result"]["cleared"] >= 1 and outcome["result"]["batches"] >= 1
    bal = balance(user.id)
    assert (bal["pending"], bal["available"]) == (0, 4_000)
    assert verify(user.id)["ok"]


def test_concurrent_clearing_runs_clear_each_entry_once(api: Api, owner_conn: Any) -> None:
    people = [api.signup().id for _ in range(3)]
    for i in range(30):
        post_due(people[i % 3], 1_000 + i, f"due-{i}")
    errors = concurrently(*[lambda: clear_all_due(limit=4)] * 4)
    assert errors == []
    for uid in people:
        entries = owner_conn.all(ENTRIES, u=uid)
        credits = [e for e in entries if e["type"] == "video_reward"]
        clearings = [e for e in entries if e["type"] == "clearing"]
        assert sorted(e["original_entry_id"] for e in clearings) == sorted(e["id"] for e in credits)
        bal = balance(uid)
        assert bal["pending"] == 0 and bal["available"] == sum(e["amount"] for e in credits)
        assert verify(uid)["ok"]


def test_clearing_racing_a_payout_request_never_overdraws(api: Api, owner_conn: Any) -> None:
    for round_ in range(6):
        user = payee(api, owner_conn, cents=1_000)  # $10 available
        post_due(user.id, 10_000_000, f"due-{round_}")  # $10 pending, due now
        outcome: dict[str, Any] = {}

        def pay(user_id: str = user.id, box: dict[str, Any] = outcome) -> None:
            try:
                payouts.request_payout(get_db(), user_id, PayoutCreateBody(amount_cents=1_500, password=PASSWORD))
                box["payout"] = "held"
            except ledger.InsufficientFunds:
                box["payout"] = "refused"

        threads = [threading.Thread(target=pay), threading.Thread(target=clear_all_due)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        bal = balance(user.id)
        assert bal["pending"] == 0 and bal["available"] >= 0
        if outcome["payout"] == "held":
            assert (bal["available"], bal["held"]) == (5_000_000, 15_000_000)
        else:
            assert (bal["available"], bal["held"]) == (20_000_000, 0)
        assert verify(user.id)["ok"]


# --- clawback ---------------------------------------------------------------------------------------
def test_a_reversal_points_at_the_original_and_reversing_twice_is_a_no_op(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    posted = credit(user.id, 7_000, "reward-r")
    first = reverse(user.id, posted.entry_id)
    assert not first["duplicate"] and first["reversed_amount"] == 7_000
    again = reverse(user.id, posted.entry_id)
    assert again["duplicate"] and again["entry_id"] == first["entry_id"]
    bal = balance(user.id)
    assert (bal["pending"], bal["available"], bal["lifetime_earned"], bal["entry_count"]) == (0, 0, 0, 2)
    entries = owner_conn.all(ENTRIES, u=user.id)
    assert [(e["type"], e["amount"], e["original_entry_id"]) for e in entries] == [
        ("video_reward", 7_000, None),
        ("reversal", -7_000, posted.entry_id),
    ]
    clear_all_due(now=dt.datetime.now(dt.UTC) + dt.timedelta(days=400))  # nothing left to clear
    assert balance(user.id)["available"] == 0
    assert verify(user.id)["ok"]


def test_reversing_a_cleared_or_never_pending_entry_is_refused(api: Api) -> None:
    user, other = api.signup(), api.signup()
    due = post_due(user.id, 3_000, "due-c")
    clear_all_due()
    with pytest.raises(ledger.NotPending):
        reverse(user.id, due)
    adjustment = credit(user.id, 1_000, "adj-c", type_="adjustment")
    with pytest.raises(ledger.NotPending):
        reverse(user.id, adjustment.entry_id)
    with pytest.raises(ledger.NotFound):
        reverse(other.id, adjustment.entry_id)  # another user's entry
    with pytest.raises(ledger.NotFound):
        reverse(user.id, 2**62)
    assert balance(user.id)["available"] == 4_000
    assert verify(user.id)["ok"]


def test_clawback_racing_clearing_settles_each_entry_one_way(api: Api, owner_conn: Any) -> None:
    outcomes: list[str] = []
    for i in range(20):
        user = api.signup()
        entry_id = post_due(user.id, 2_500, f"due-race-{i}")
        box: dict[str, str] = {}
        start = threading.Barrier(2)

        def claw(uid: str = user.id, eid: int = entry_id, out: dict[str, str] = box, go: threading.Barrier = start) -> None:
            go.wait()
            try:
                out["reverse"] = "duplicate" if reverse(uid, eid)["duplicate"] else "reversed"
            except ledger.NotPending:
                out["reverse"] = "not_pending"

        def clear(go: threading.Barrier = start, out: dict[str, str] = box) -> None:
            go.wait()
            try:
                clear_all_due()
            except Exception as exc:  # reported below: the job must never fail on a clawed-back row
                out["clear_error"] = repr(exc)

        threads = [threading.Thread(target=claw), threading.Thread(target=clear)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert "clear_error" not in box, box
        clear_all_due()  # a later run finds nothing left of this entry
        types = [e["type"] for e in owner_conn.all(ENTRIES, u=user.id)]
        bal = balance(user.id)
        if box["reverse"] == "reversed":
            assert types == ["video_reward", "reversal"] and (bal["available"], bal["pending"]) == (0, 0)
        else:
            assert box["reverse"] == "not_pending"
            assert types == ["video_reward", "clearing"] and (bal["available"], bal["pending"]) == (2_500, 0)
        assert verify(user.id)["ok"]
        outcomes.append(box["reverse"])
    assert set(outcomes) <= {"reversed", "not_pending"}


# --- verify-ledger covers the buckets ----------------------------------------------------------------
def test_verify_detects_tampering_with_buckets(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    credit(user.id, 6_000, "reward-t")
    credit(user.id, 1_000, "adj-t", type_="adjustment")
    with owner_conn.transaction():
        owner_conn.script("ALTER TABLE earnings DISABLE TRIGGER earnings_append_only")
        owner_conn.execute(
            Query("t_tamper_pending", "UPDATE earnings SET pending_after = 1 WHERE user_id = CAST(:u AS uuid) AND seq = 1", prepared=False),
            u=user.id,
        )
        owner_conn.execute(
            Query("t_tamper_bucket", "UPDATE balances SET pending = 5000 WHERE user_id = CAST(:u AS uuid)", prepared=False), u=user.id
        )
        report = ledger.verify(owner_conn, user_id=user.id)
        owner_conn.script("ROLLBACK; BEGIN")
    assert not report["ok"]
    assert {p["problem"] for p in report["chain_problems"]} >= {"hash_mismatch"}
    [problem] = report["balance_problems"]
    assert (problem["pending"], problem["entries_pending"], problem["pending_rows_total"]) == (5_000, 6_000, 6_000)
    assert verify(user.id)["ok"]


# --- what users and staff see ------------------------------------------------------------------------
def test_stats_and_history_show_each_bucket_and_pending_clearing_times(api: Api) -> None:
    user = api.signup()
    posted = credit(user.id, 2_500, "reward-v")
    credit(user.id, 10_000, "adj-v", type_="adjustment")
    stats = api.get("/earnings/stats", user=user).get_json()
    assert (stats["pending"]["micros"], stats["available"]["micros"], stats["held"]["micros"]) == (2_500, 10_000, 0)
    [entry] = stats["pending_entries"]
    assert (entry["entry_id"], entry["type"], entry["amount"]["micros"], entry["awaiting"]) == (
        posted.entry_id,
        "video_reward",
        2_500,
        None,
    )
    assert entry["clears_at"] is not None and not stats["pending_entries_truncated"]
    items = api.get("/earnings/", user=user).get_json()["items"]
    by_type = {i["type"]: i for i in items}
    assert by_type["video_reward"]["pending"] is True and by_type["video_reward"]["clears_at"] == entry["clears_at"].replace("+00:00", "Z")
    assert by_type["adjustment"]["pending"] is False and by_type["adjustment"]["clears_at"] is None


def test_staff_claw_back_a_pending_credit_with_a_reason(api: Api, owner_conn: Any) -> None:
    finance = api.staff(owner_conn, "finance")
    user = api.signup()
    posted = credit(user.id, 9_000, "reward-s")
    path = f"/admin/users/{user.id}/entries/{posted.entry_id}/reverse"
    resp = api.post(path, user=finance, json={"reason": "partner reversed the offer"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["duplicate"] is False and body["amount"]["micros"] == -9_000 and body["entry_id"] == posted.entry_id
    again = api.post(path, user=finance, json={"reason": "partner reversed the offer"})
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert again.get_json()["reversal_entry_id"] == body["reversal_entry_id"]
    audit = owner_conn.all(AUDIT, u=user.id)
    assert [(a["action"], a["target_id"], a["reason"]) for a in audit] == [
        ("ledger.reversal", str(posted.entry_id), "partner reversed the offer")
    ]
    # cleared money is never taken back
    cleared = post_due(user.id, 1_000, "due-s")
    clear_all_due()
    resp = api.post(f"/admin/users/{user.id}/entries/{cleared}/reverse", user=finance, json={"reason": "too late"})
    assert resp.status_code == 409 and error_code(resp) == "not_pending"
    for bad in ("abc", "-1", "99999999999999999999", str(2**40)):
        resp = api.post(f"/admin/users/{user.id}/entries/{bad}/reverse", user=finance, json={"reason": "x"})
        assert resp.status_code == 404, (bad, resp.get_data(as_text=True))
    resp = api.post(path, user=finance, json={"reason": ""})
    assert resp.status_code in (400, 422)
    resp = api.post(f"/admin/users/{finance.id}/entries/{posted.entry_id}/reverse", user=finance, json={"reason": "mine"})
    assert resp.status_code in (403, 404)
    assert balance(user.id)["available"] == 1_000 and verify(user.id)["ok"]
