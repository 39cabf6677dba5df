"""The ledger's invariants, proven against the real database: append-only, idempotent, never negative,
balance = sum of entries, tamper-evident."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pg8000.exceptions import DatabaseError

from functions.ledger import service as ledger
from shared.db import Query, get_db, sqlstate
from shared.errors import ValidationFailed
from tests.helpers import Api
from tests.ledger.test_clearing import balance, concurrently, verify  # the ledger tests' helpers

# Credits clear at once here: these tests are about other rules (clearing: tests/ledger/test_clearing.py).
pytestmark = pytest.mark.usefixtures("immediate_clearing")


def _post(user_id: str, amount: int, key: str | None = None, type_: str | None = None) -> ledger.Posted:
    type_ = type_ or ("adjustment" if amount < 0 else "video_reward")
    with get_db().transaction() as conn:
        return ledger.post(conn, user_id=user_id, type=type_, amount=amount, idempotency_key=key or uuid.uuid4().hex, source="test")


def test_post_updates_the_carried_balance_and_chain(api: Api) -> None:
    user = api.signup()
    first = _post(user.id, 1_500)
    second = _post(user.id, 2_500)
    third = _post(user.id, -1_000)
    assert (first.seq, second.seq, third.seq) == (1, 2, 3)
    assert third.balance_after == 3_000
    bal = balance(user.id)
    # lifetime earned is gross: the negative adjustment is a correction, not un-earning
    assert bal["available"] == 3_000 and bal["lifetime_earned"] == 4_000 and bal["entry_count"] == 3
    assert verify(user.id)["ok"]


def test_same_key_posts_once_and_different_content_conflicts(api: Api) -> None:
    user = api.signup()
    a = _post(user.id, 700, key="k-1")
    b = _post(user.id, 700, key="k-1")
    assert b.duplicate and b.entry_id == a.entry_id and not a.duplicate
    assert balance(user.id)["available"] == 700
    with pytest.raises(ledger.IdempotencyConflict):
        _post(user.id, 701, key="k-1")


def test_a_retry_is_answered_with_its_entry_even_when_its_checks_would_now_fail(api: Api) -> None:
    user = api.signup()
    _post(user.id, 1_000)
    hold = _post(user.id, -1_000, key="hold-1", type_="payout_hold")  # available is now 0
    again = _post(user.id, -1_000, key="hold-1", type_="payout_hold")  # would overdraw if applied again
    assert again.duplicate and again.entry_id == hold.entry_id and again.seq == hold.seq
    with pytest.raises(ledger.IdempotencyConflict):  # the key's other use wins over the failing check
        _post(user.id, -1_001, key="hold-1", type_="payout_hold")
    with pytest.raises(ledger.InsufficientFunds):  # a new key: the check's own error
        _post(user.id, -1, key="hold-2", type_="payout_hold")
    bal = balance(user.id)
    assert bal["available"] == 0 and bal["held"] == 1_000 and bal["entry_count"] == 2
    assert verify(user.id)["ok"]


def test_never_overdraws(api: Api) -> None:
    user = api.signup()
    _post(user.id, 1_000)
    with pytest.raises(ledger.InsufficientFunds):
        _post(user.id, -1_001, type_="payout_hold")
    assert balance(user.id)["available"] == 1_000


def test_entry_types_and_signs_are_enforced(api: Api) -> None:
    user = api.signup()
    _post(user.id, 10_000)
    with pytest.raises(Exception) as exc:
        _post(user.id, 5, type_="payout_hold")
    assert getattr(exc.value, "code", "") == "invalid_entry"
    for bad in (0, 1.5, True, ledger.MAX_ENTRY + 1):
        with pytest.raises(Exception) as exc:
            _post(user.id, bad)  # type: ignore[arg-type]
        assert getattr(exc.value, "code", "") == "invalid_amount"
    with pytest.raises(Exception) as exc:
        _post(user.id, 5, type_="free_money")
    assert getattr(exc.value, "code", "") == "unknown_entry_type"
    with pytest.raises(Exception) as exc:
        _post(str(uuid.uuid4()), 5)
    assert getattr(exc.value, "code", "") == "unknown_user"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE earnings SET amount = amount + 1 WHERE user_id = CAST(:u AS uuid)",
        "DELETE FROM earnings WHERE user_id = CAST(:u AS uuid)",
        "TRUNCATE earnings",
        "TRUNCATE earnings_p00",
        "INSERT INTO earnings (user_id, seq, type, amount, balance_after, idempotency_key, source, prev_hash, hash)"
        " VALUES (CAST(:u AS uuid), 99, 'video_reward', 1, 1, 'x', 'x', '\\x00', '\\x00')",
        "UPDATE balances SET available = available + 1000000 WHERE user_id = CAST(:u AS uuid)",
    ],
)
def test_application_role_cannot_rewrite_money(api: Api, sql: str) -> None:
    user = api.signup()
    _post(user.id, 1_000)
    with get_db().connection() as conn, pytest.raises(DatabaseError) as exc:
        conn.execute(Query("t_bad", sql, prepared=False), **({"u": user.id} if ":u" in sql else {}))
    assert sqlstate(exc.value) == "42501"  # insufficient_privilege
    assert balance(user.id)["available"] == 1_000


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE earnings SET amount = amount + 1 WHERE user_id = CAST(:u AS uuid)",
        "DELETE FROM earnings WHERE user_id = CAST(:u AS uuid)",
        "TRUNCATE earnings",
        "TRUNCATE earnings_p07",
    ],
)
def test_even_the_owner_cannot_update_delete_or_truncate(api: Api, owner_conn: Any, sql: str) -> None:
    user = api.signup()
    _post(user.id, 1_000)
    with pytest.raises(DatabaseError) as exc:
        owner_conn.execute(Query("t_bad_owner", sql, prepared=False), **({"u": user.id} if ":u" in sql else {}))
    assert sqlstate(exc.value) == "EP010"
    assert "append-only" in str(exc.value)


def test_verify_detects_tampering(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    for amount in (100, 200, 300):
        _post(user.id, amount)
    with owner_conn.transaction():
        owner_conn.script("ALTER TABLE earnings DISABLE TRIGGER earnings_append_only")
        owner_conn.execute(
            Query(
                "t_tamper",
                "UPDATE earnings SET amount = 250, balance_after = 350 WHERE user_id = CAST(:u AS uuid) AND seq = 2",
                prepared=False,
            ),
            u=user.id,
        )
        report = ledger.verify(owner_conn, user_id=user.id)
        owner_conn.script("ROLLBACK; BEGIN")  # undo the tampering, leave a transaction for the context manager
    assert not report["ok"]
    problems = {p["problem"] for p in report["chain_problems"]}
    assert "hash_mismatch" in problems
    assert report["balance_problems"], "the carried balance no longer equals the sum"
    assert verify(user.id)["ok"]


def test_concurrent_duplicates_give_one_entry(api: Api) -> None:
    user = api.signup()
    results: list[ledger.Posted] = []
    barrier = threading.Barrier(12)

    def worker() -> None:
        barrier.wait()
        results.append(_post(user.id, 5_000, key="same-credit"))

    errors = concurrently(*[worker] * 12)
    assert not errors
    assert len({r.entry_id for r in results}) == 1
    assert sum(not r.duplicate for r in results) == 1
    assert balance(user.id)["available"] == 5_000


def test_concurrent_debits_never_overdraw(api: Api) -> None:
    user = api.signup()
    _post(user.id, 10_000)
    outcomes: list[str] = []
    barrier = threading.Barrier(16)

    def worker(i: int) -> None:
        barrier.wait()
        try:
            _post(user.id, -1_000, key=f"hold-{i}", type_="payout_hold")
            outcomes.append("ok")
        except ledger.InsufficientFunds:
            outcomes.append("refused")

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 10 and outcomes.count("refused") == 6
    assert balance(user.id)["available"] == 0
    assert verify(user.id)["ok"]


_ops = st.lists(
    st.tuples(
        st.sampled_from(["video_reward", "login_bonus", "adjustment", "payout_hold", "payout_release", "referral_commission"]),
        st.integers(min_value=1, max_value=5_000_000),
        st.booleans(),  # negative adjustment?
        st.integers(min_value=0, max_value=7),  # key slot: repeats are retries
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_property_random_sequences_keep_every_invariant(api: Api, ops: list[tuple[str, int, bool, int]]) -> None:
    user = api.signup()
    model_balance = 0
    model_held = 0
    model_earned = 0
    seen: dict[str, tuple[str, int]] = {}
    for type_, magnitude, negative, slot in ops:
        amount = -magnitude if type_ == "payout_hold" or (type_ == "adjustment" and negative) else magnitude
        key = f"{type_}-{slot}"
        try:
            posted = _post(user.id, amount, key=key, type_=type_)
        except ledger.InsufficientFunds:
            assert model_balance + amount < 0
            continue
        except ledger.IdempotencyConflict:
            assert key in seen
            assert seen[key] != (type_, amount)
            continue
        except ValidationFailed:  # a release of more than is held: the held bucket never goes negative
            assert type_ == "payout_release" and key not in seen and model_held < amount
            continue
        if key in seen:
            assert posted.duplicate
            assert seen[key] == (type_, amount)
        else:
            assert not posted.duplicate
            seen[key] = (type_, amount)
            model_balance += amount
            if type_ in ("payout_hold", "payout_release"):
                model_held -= amount
            if type_ not in ("payout_hold", "payout_release") and amount > 0:
                model_earned += amount
        assert posted.balance_after >= 0
    bal = balance(user.id)
    assert bal["available"] == model_balance >= 0
    assert bal["held"] == model_held >= 0
    assert bal["lifetime_earned"] == model_earned >= 0
    assert bal["entry_count"] == len(seen)
    assert verify(user.id)["ok"]


def test_format_micros() -> None:
    assert ledger.format_micros(1_234_567) == "$1.234567"
    assert ledger.format_micros(1_500_000) == "$1.50"
    assert ledger.format_micros(-10_000) == "-$0.01"
    assert ledger.format_micros(0) == "$0.00"
