"""Bonuses: the daily bonus once per UTC day with verified watching (never a bare login), streaks over
consecutive days, referral bonus once, commission on video rewards only."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import pytest

from functions.earnings import bonuses
from functions.ledger import service as ledger
from shared.db import Query, get_db
from shared.errors import ValidationFailed
from shared.models import money
from tests.helpers import Api

# Credits clear at once here: these tests are about other rules (clearing: tests/ledger/test_clearing.py).
pytestmark = pytest.mark.usefixtures("immediate_clearing")

ENTRIES = Query(
    "t_bonus_entries",
    "SELECT type, amount, idempotency_key, source, reference, metadata FROM earnings WHERE user_id = CAST(:u AS uuid) ORDER BY seq",
    prepared=False,
)
SET_STATUS = Query("t_bonus_set_status", "UPDATE users SET status = :status WHERE id = CAST(:u AS uuid)", prepared=False)
DAY = dt.date(2031, 3, 1)  # a fixed "today" far from the real one: the real logins of a test never collide with it


def entries(user_id: str) -> list[dict[str, Any]]:
    with get_db().connection() as conn:
        return conn.all(ENTRIES, u=user_id)


def config() -> dict[str, Any]:
    with get_db().connection() as conn:
        return bonuses.config(conn)


def login_on(user_id: str, day: dt.date) -> dict[str, Any]:
    """The day's first verified watching (what a completed video calls), as {"bonus": ...}."""
    with get_db().transaction() as conn:
        return {"bonus": bonuses.on_verified_watch(conn, user_id, today=day)}


def streak_amount(day_n: int) -> int:
    table = config()["streak_bonus_micros"]
    return int(table[min(day_n, len(table)) - 1])


def reward(user_id: str, amount: int) -> int:
    """A video reward as the progress service posts it; returns its entry id."""
    with get_db().transaction() as conn:
        return ledger.post(
            conn, user_id=user_id, type="video_reward", amount=amount, idempotency_key=f"video:{uuid.uuid4().hex}", source="progress"
        ).entry_id


def completed(user_id: str, amount: int, entry_id: int, video_id: str = "video-1") -> None:
    with get_db().transaction() as conn:
        bonuses.on_video_completed(conn, user_id, video_id, amount, entry_id)


def test_a_bare_login_credits_nothing_and_verified_watching_credits_once_a_day(api: Api) -> None:
    user = api.signup()
    first = api.login(user.email)
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["bonus"] is None
    assert entries(user.id) == []  # the account never watched anything
    bonus = login_on(user.id, DAY)["bonus"]
    login_amount = config()["login_bonus_micros"]
    assert bonus["date"] == DAY.isoformat() and bonus["streak_days"] == 1
    assert [(c["type"], c["amount"]["micros"]) for c in bonus["credited"]] == [("login_bonus", login_amount)]
    assert bonus["total"] == money(login_amount)
    assert login_on(user.id, DAY)["bonus"] is None  # a second completion that day
    assert [(e["type"], e["idempotency_key"], e["source"]) for e in entries(user.id)] == [
        ("login_bonus", f"login_bonus:{user.id}:{DAY.isoformat()}", "watch")
    ]


def test_concurrent_logins_on_one_day_credit_once(api: Api) -> None:
    user = api.signup()
    results: list[dict[str, Any]] = []
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        results.append(login_on(user.id, DAY))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r["bonus"] is not None for r in results) == 1
    assert [e["type"] for e in entries(user.id)] == ["login_bonus"]


def test_streak_grows_over_consecutive_days_caps_and_resets_after_a_gap(api: Api) -> None:
    user = api.signup()
    table = config()["streak_bonus_micros"]
    days = [DAY + dt.timedelta(days=i) for i in range(len(table) + 2)]  # past the cap
    for n, day in enumerate(days, start=1):
        answer = login_on(user.id, day)["bonus"]
        assert answer["streak_days"] == n
        streak = [c for c in answer["credited"] if c["type"] == "streak_bonus"]
        expected = streak_amount(n)
        assert [c["amount"]["micros"] for c in streak] == ([expected] if expected else [])
        assert login_on(user.id, day)["bonus"] is None  # a second login that day
    assert streak_amount(len(days)) == table[-1]  # capped at the last day of the table
    # one day missed: back to day 1; an earlier date never rewinds the streak
    after_gap = days[-1] + dt.timedelta(days=2)
    assert login_on(user.id, after_gap)["bonus"]["streak_days"] == 1
    assert login_on(user.id, days[0])["bonus"] is None
    assert login_on(user.id, after_gap + dt.timedelta(days=1))["bonus"]["streak_days"] == 2
    got = entries(user.id)
    logins = [e for e in got if e["type"] == "login_bonus"]
    assert len(logins) == len(days) + 2
    streaks = [e for e in got if e["type"] == "streak_bonus"]
    assert sum(e["amount"] for e in streaks) == sum(streak_amount(n) for n in range(1, len(days) + 1)) + streak_amount(2)
    assert all(e["idempotency_key"].startswith(f"streak_bonus:{user.id}:") and e["metadata"]["streak_days"] >= 2 for e in streaks)
    with get_db().connection() as conn:
        assert ledger.verify(conn, user_id=user.id)["ok"]


def test_staff_accounts_get_no_daily_bonus(api: Api, owner_conn: Any) -> None:
    staff = api.staff(owner_conn, "support")  # logs in again as staff
    assert login_on(staff.id, DAY)["bonus"] is None
    assert [e["type"] for e in entries(staff.id)] == []


def test_referral_bonus_once_and_commission_on_every_video_reward(api: Api) -> None:
    cfg = config()
    referrer = api.signup()
    referred = api.signup(referral_code=referrer.referral_code)
    first = reward(referred.id, 12_345)
    completed(referred.id, 12_345, first)
    completed(referred.id, 12_345, first)  # the completion transaction retried
    second = reward(referred.id, 40_000)
    completed(referred.id, 40_000, second, video_id="video-2")
    got = entries(referrer.id)
    bonus = [e for e in got if e["type"] == "referral_bonus"]
    assert [(e["amount"], e["idempotency_key"], e["reference"]) for e in bonus] == [
        (cfg["referral_bonus_micros"], f"referral_bonus:{referred.id}", referred.id)
    ]
    commissions = [e for e in got if e["type"] == "referral_commission"]
    bps = cfg["referral_commission_bps"]
    assert [(e["amount"], e["idempotency_key"]) for e in commissions] == [
        (12_345 * bps // 10_000, f"referral_commission:{first}"),
        (40_000 * bps // 10_000, f"referral_commission:{second}"),
    ]
    assert commissions[0]["metadata"]["video_id"] == "video-1" and commissions[0]["metadata"]["bps"] == bps
    # the referred user's own bonuses pay the referrer nothing
    login_on(referred.id, DAY)
    assert entries(referrer.id) == got


def test_commission_is_integer_math_rounding_down() -> None:
    assert bonuses.commission(12_345, 500) == 617  # 617.25
    assert bonuses.commission(19, 500) == 0  # 0.95
    assert bonuses.commission(10_000, 1) == 1
    assert bonuses.commission(9_999, 1) == 0
    assert bonuses.commission(10**12, 10_000) == 10**12
    assert bonuses.commission(1_000, 0) == 0


def test_commission_only_on_the_referred_users_video_rewards(api: Api) -> None:
    referrer = api.signup()
    referred = api.signup(referral_code=referrer.referral_code)
    login_on(referred.id, DAY)
    with get_db().connection() as conn:
        login_entry = conn.value(
            Query(
                "t_bonus_login_entry", "SELECT id FROM earnings WHERE user_id = CAST(:u AS uuid) AND type = 'login_bonus'", prepared=False
            ),
            u=referred.id,
        )
    with pytest.raises(ValidationFailed) as exc:
        completed(referred.id, config()["login_bonus_micros"], int(login_entry))
    assert exc.value.code == "not_a_video_reward"
    other = api.signup()
    with pytest.raises(ValidationFailed):
        completed(referred.id, 5_000, reward(other.id, 5_000))  # someone else's reward
    mine = reward(referred.id, 5_000)
    with pytest.raises(ValidationFailed) as exc:
        completed(referred.id, 6_000, mine)
    assert exc.value.code == "reward_mismatch"
    assert entries(referrer.id) == []


def test_no_referrer_or_blocked_referrer_earns_nothing(api: Api, owner_conn: Any) -> None:
    loner = api.signup()
    completed(loner.id, 10_000, reward(loner.id, 10_000))
    assert [e["type"] for e in entries(loner.id)] == ["video_reward"]
    referrer = api.signup()
    referred = api.signup(referral_code=referrer.referral_code)
    owner_conn.execute(SET_STATUS, u=referrer.id, status="blocked")
    completed(referred.id, 10_000, reward(referred.id, 10_000))
    assert entries(referrer.id) == []
