"""A partner's reversal racing the clearing of the same credit, and racing a payout request, on real concurrent
database connections (threads released together by a barrier; a short head start decides the order in some
rounds, so both orders happen). Whatever the order: the reward ends clawed back while pending or owed back as
a recovery, never both and never neither; no bucket goes negative; the entries add up to the balances."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from functions.ledger import service as ledger
from functions.partners import service
from functions.payouts import flows as payouts
from functions.payouts.models import PayoutCreateBody
from shared.config import get_settings
from shared.db import Query, get_db
from tests.helpers import PASSWORD, Api, User
from tests.ledger.test_clearing import clear_all_due
from tests.partners.support import buckets, new_partner, offerwall_query, set_secret, verify_ok
from tests.payouts.test_requests import payee

SECRET = bytes(range(7, 39))
REWARD = Query(
    "t_partner_race_reward",
    "SELECT reversal_kind FROM partner_rewards WHERE partner_id = :p AND transaction_id = :t",
    prepared=False,
)
HEAD_START_S = 0.25  # longer than opening a connection and running either side


def clear_due() -> None:
    clear_all_due(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2))


@pytest.fixture()
def offerwall(api: Api, owner_conn: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("SECRET_STORE", "database")
    get_settings.cache_clear()
    admin = api.staff(owner_conn, "admin")
    # pending for an hour (the clearing job below runs as if it were two hours later); $10 = 10,000 units
    pid = new_partner(api, admin, "offerwall", clearing_hours=1, max_units=100_000, daily_cap_micros=10**9)
    set_secret(api, admin, pid, SECRET)
    return pid


def _postback(pid: str, user_id: str, txn: str, units: int, status: str) -> service.Answer:
    query = offerwall_query(SECRET, user_id=user_id, transaction_id=txn, amount=units, status=status)
    return service.handle("offerwall", pid, query, f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(256)}")


def _race(*jobs: Callable[[], None], delay: dict[int, float]) -> None:
    """Runs the jobs on their own threads (each with its own pooled connection), released together."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(i: int, job: Callable[[], None]) -> None:
        barrier.wait()
        time.sleep(delay.get(i, 0.0))
        try:
            job()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i, job)) for i, job in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == [], errors


def _settled(pid: str, txn: str) -> str:
    with get_db().connection() as conn:
        return str(conn.value(REWARD, p=pid, t=txn))


def _never_negative(user_id: str) -> dict[str, int]:
    b = buckets(user_id)
    assert all(v >= 0 for v in b.values()), b
    verify_ok(user_id)  # every bucket equals the sum of its entries, hash chain intact
    return b


def test_a_reversal_racing_the_clearing_of_its_credit_is_a_clawback_or_a_recovery(api: Api, offerwall: str) -> None:
    outcomes = []
    for round_ in range(12):
        user = api.signup()
        txn = f"race-clear-{uuid.uuid4().hex[:12]}"
        assert _postback(offerwall, user.id, txn, 2_500, "credit").outcome == "applied"
        answers: list[service.Answer] = []
        # rounds 0, 3, 6...: a true race; 1, 4...: the reversal starts first; 2, 5...: the clearing does
        delay = [{}, {1: HEAD_START_S}, {0: HEAD_START_S}][round_ % 3]

        def reverse(uid: str = user.id, t: str = txn, out: list[service.Answer] = answers) -> None:
            out.append(_postback(offerwall, uid, t, 2_500, "reversal"))

        _race(reverse, clear_due, delay=delay)
        assert [a.outcome for a in answers] == ["applied"], answers
        clear_due()  # a later run finds nothing left of this credit
        kind = _settled(offerwall, txn)
        b = _never_negative(user.id)
        if kind == "clawback":  # taken back while pending: it never reached available
            assert (b["available"], b["pending"], b["recovery"]) == (0, 0, 0)
        else:  # it cleared first: available keeps it, and the user owes it back
            assert kind == "recovery" and (b["available"], b["pending"], b["recovery"]) == (2_500_000, 0, 2_500_000)
        outcomes.append(kind)
    assert set(outcomes) == {"clawback", "recovery"}, outcomes


def test_a_reversal_racing_a_payout_request_and_clearing_never_overdraws(api: Api, owner_conn: Any, offerwall: str) -> None:
    outcomes = []
    for round_ in range(9):
        user: User = payee(api, owner_conn, cents=0)  # KYC verified, a payout method, no money
        txn = f"race-pay-{uuid.uuid4().hex[:12]}"
        assert _postback(offerwall, user.id, txn, 10_000, "credit").outcome == "applied"  # $10, pending and due
        box: dict[str, str] = {}

        def pay(uid: str = user.id, out: dict[str, str] = box) -> None:
            try:
                payouts.request_payout(get_db(), uid, PayoutCreateBody(amount_cents=1_000, password=PASSWORD))
                out["payout"] = "held"
            except ledger.InsufficientFunds:
                out["payout"] = "refused"

        def reverse(uid: str = user.id, t: str = txn, out: dict[str, str] = box) -> None:
            out["reversal"] = _postback(offerwall, uid, t, 10_000, "reversal").outcome

        # the reversal first, last, or in a true race with the clearing and the payout request
        delay = [{}, {2: HEAD_START_S}, {0: HEAD_START_S, 1: HEAD_START_S / 2}][round_ % 3]
        _race(clear_due, pay, reverse, delay=delay)
        assert box["reversal"] == "applied", box
        kind = _settled(offerwall, txn)
        b = _never_negative(user.id)
        if kind == "clawback":  # reversed while pending: nothing cleared, so nothing could be paid out
            assert box["payout"] == "refused" and (b["available"], b["pending"], b["held"], b["recovery"]) == (0, 0, 0, 0)
        elif box["payout"] == "held":  # cleared, held for the payout, and owed back
            assert kind == "recovery" and (b["available"], b["held"], b["recovery"]) == (0, 10_000_000, 10_000_000)
        else:  # cleared after the payout request was refused, then reversed: owed back, available untouched
            assert kind == "recovery" and (b["available"], b["held"], b["recovery"]) == (10_000_000, 0, 10_000_000)
        outcomes.append((kind, box["payout"]))
    kinds = {k for k, _ in outcomes}
    assert kinds == {"clawback", "recovery"}, outcomes
