"""Referrals that have to be real: rewards pending until the referred account qualifies (activity on
distinct UTC days and verified KYC), a per-referrer daily limit, expiry with reversal, and the farm
of throwaway accounts that earns its referrer nothing (migration 0061, docs/ledger.md)."""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from typing import Any

import pytest
from werkzeug.test import Client

from functions.earnings import bonuses
from functions.ledger import service as ledger
from shared.config import get_settings
from shared.db import Conn, Query, get_db
from tests.earnings.test_bonuses import completed, config, reward
from tests.fixtures.gcs import Gcs
from tests.helpers import Api, User
from tests.kyc.support import upload_and_finalize
from tests.ledger.test_clearing import balance, clear_all_due, owner, verify
from tests.progress.test_heartbeats import age, hb, make_video

PAST_DAYS = Query(
    "t_ref_past_days",
    """INSERT INTO daily_video_earnings (user_id, day, credited_micros, completions)
       SELECT CAST(:u AS uuid), current_date - d, CAST(:micros AS bigint), 1 FROM generate_series(1, CAST(:days AS int)) d""",
    prepared=False,
)
SET_KYC = Query("t_ref_kyc", "UPDATE users SET kyc_status = :kyc WHERE id = CAST(:u AS uuid)", prepared=False)
REFERRAL = Query(
    "t_ref_referral",
    "SELECT status, qualified_at, expired_at FROM referrals WHERE referred_user_id = CAST(:u AS uuid)",
    prepared=False,
)
PENDING = Query(
    "t_ref_pending",
    """SELECT type, amount, clears_at = 'infinity' AS waiting, CASE WHEN clears_at < 'infinity' THEN clears_at END AS clears_at, awaiting
         FROM pending_credits WHERE user_id = CAST(:u AS uuid) ORDER BY seq""",
    prepared=False,
)
ENTRY_TYPES = Query("t_ref_entry_types", "SELECT type, amount FROM earnings WHERE user_id = CAST(:u AS uuid) ORDER BY seq", prepared=False)

LATER = dt.timedelta(days=400)


def active_days(owner_conn: Conn, user_id: str, days: int, micros: int = 40_000) -> None:
    """Video rewards earned on ``days`` earlier UTC days (what the progress function records per day)."""
    owner_conn.execute(PAST_DAYS, u=user_id, days=days, micros=micros)


def referred_pair(api: Api) -> tuple[User, User]:
    referrer = api.signup()
    return referrer, api.signup(referral_code=referrer.referral_code)


def watch_and_complete(user_id: str, amount: int = 20_000) -> int:
    entry = reward(user_id, amount)
    completed(user_id, amount, entry, video_id=f"video-{uuid.uuid4().hex[:8]}")
    return entry


def test_rewards_stay_pending_until_the_referral_qualifies_then_clear(api: Api, owner_conn: Conn) -> None:
    cfg = config()
    referrer, referred = referred_pair(api)
    watch_and_complete(referred.id)
    pending = owner_conn.all(PENDING, u=referrer.id)
    assert {p["type"] for p in pending} == {"referral_bonus", "referral_commission"}
    assert all(p["awaiting"] == f"referral:{referred.id}" and p["waiting"] and p["clears_at"] is None for p in pending)
    assert owner_conn.one(REFERRAL, u=referred.id)["status"] == "pending"
    clear_all_due(now=dt.datetime.now(dt.UTC) + LATER)  # waiting for a condition never clears by time
    assert balance(referrer.id)["available"] == 0
    # the referred account shows activity of its own on distinct days and passes KYC
    active_days(owner_conn, referred.id, 3)
    owner_conn.execute(SET_KYC, u=referred.id, kyc="verified")
    watch_and_complete(referred.id)
    assert owner_conn.one(REFERRAL, u=referred.id)["status"] == "qualified"
    pending = owner_conn.all(PENDING, u=referrer.id)
    assert len(pending) == 3 and all(p["awaiting"] is None for p in pending)
    hours = dt.timedelta(hours=get_settings().clearing_referral_hours)
    assert all(p["clears_at"] <= dt.datetime.now(dt.UTC) + hours for p in pending)
    clear_all_due(now=dt.datetime.now(dt.UTC) + hours + dt.timedelta(minutes=1))
    commission = bonuses.commission(20_000, cfg["referral_commission_bps"])
    assert balance(referrer.id)["available"] == cfg["referral_bonus_micros"] + 2 * commission
    assert balance(referrer.id)["pending"] == 0 and verify(referrer.id)["ok"]


def test_a_kyc_decision_can_be_what_qualifies_the_referral(api: Api, client: Client, owner_conn: Conn, gcs: Gcs) -> None:
    referrer, referred = referred_pair(api)
    active_days(owner_conn, referred.id, 3)
    watch_and_complete(referred.id)
    assert owner_conn.one(REFERRAL, u=referred.id)["status"] == "pending"  # no KYC yet
    upload_and_finalize(api, client, referred)
    compliance = api.staff(owner_conn, "compliance")
    resp = api.post(f"/admin/kyc/{referred.id}/decision", user=compliance, json={"decision": "verified", "reason": "documents match"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert owner_conn.one(REFERRAL, u=referred.id)["status"] == "qualified"
    assert all(p["awaiting"] is None for p in owner_conn.all(PENDING, u=referrer.id))


def test_a_referral_from_an_unverified_address_waits_for_the_verification(api: Api, owner_conn: Conn) -> None:
    """Issue 11: an account whose email is not verified can watch and earn, but its referral does not
    qualify; using the emailed link is what qualifies it."""
    from tests.helpers import PASSWORD, random_ip, unique_email, verification_token

    referrer = api.signup()
    email = unique_email("unverified-referred")
    body = {"email": email, "password": PASSWORD, "display_name": "Friend", "referral_code": referrer.referral_code}
    assert api.client.post("/auth/signup", json=body, headers={"X-Forwarded-For": random_ip()}).status_code == 202
    referred_id = str(owner_conn.value(Query("t_ref_user_id", "SELECT id::text FROM users WHERE email = :e", prepared=False), e=email))
    active_days(owner_conn, referred_id, 3)
    owner_conn.execute(SET_KYC, u=referred_id, kyc="verified")
    watch_and_complete(referred_id)
    assert owner_conn.one(REFERRAL, u=referred_id)["status"] == "pending"  # every condition but the address
    assert api.post("/auth/email/verify", json={"token": verification_token(email)}).status_code == 200
    assert owner_conn.one(REFERRAL, u=referred_id)["status"] == "qualified"
    assert all(p["awaiting"] is None for p in owner_conn.all(PENDING, u=referrer.id))


def test_a_referral_that_never_qualifies_expires_and_its_rewards_are_reversed(api: Api, owner_conn: Conn) -> None:
    referrer, referred = referred_pair(api)
    watch_and_complete(referred.id)
    watch_and_complete(referred.id)
    earned = balance(referrer.id)
    assert earned["pending"] > 0 and earned["available"] == 0
    window = dt.timedelta(days=get_settings().referral_window_days)
    with owner() as conn:
        assert bonuses.expire_referrals(conn, now=dt.datetime.now(dt.UTC) + window - dt.timedelta(hours=1)) == {"expired": 0, "reversed": 0}
        result = bonuses.expire_referrals(conn, now=dt.datetime.now(dt.UTC) + window + dt.timedelta(minutes=1))
    assert result["expired"] >= 1 and result["reversed"] >= 3
    assert owner_conn.one(REFERRAL, u=referred.id)["status"] == "expired"
    after = balance(referrer.id)
    assert (after["pending"], after["available"], after["lifetime_earned"]) == (0, 0, 0)
    types = [e["type"] for e in owner_conn.all(ENTRY_TYPES, u=referrer.id)]
    assert types.count("reversal") == 3 and "clearing" not in types
    # an expired referral earns its referrer nothing more, whatever the referred account does
    active_days(owner_conn, referred.id, 3)
    owner_conn.execute(SET_KYC, u=referred.id, kyc="verified")
    watch_and_complete(referred.id)
    assert [e["type"] for e in owner_conn.all(ENTRY_TYPES, u=referrer.id)] == types
    assert verify(referrer.id)["ok"]


def test_many_qualifying_events_for_one_referrer_respect_the_daily_limit(
    api: Api, owner_conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFERRAL_DAILY_LIMIT", "3")
    get_settings.cache_clear()
    referrer = api.signup()
    friends = [api.signup(referral_code=referrer.referral_code) for _ in range(8)]
    for f in friends:
        watch_and_complete(f.id)  # pending referral
        active_days(owner_conn, f.id, 3)
        owner_conn.execute(SET_KYC, u=f.id, kyc="verified")
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(friends))

    def qualify(user_id: str) -> None:
        try:
            barrier.wait()
            watch_and_complete(user_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=qualify, args=(f.id,)) for f in friends]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    statuses = [owner_conn.one(REFERRAL, u=f.id)["status"] for f in friends]
    assert statuses.count("qualified") == 3 and statuses.count("pending") == 5
    rows = owner_conn.all(PENDING, u=referrer.id)
    assert sum(1 for r in rows if r["type"] == "referral_bonus") == 8  # one bonus each, nothing twice
    assert sum(1 for r in rows if r["awaiting"] is None) == 3 * 3  # bonus + two commissions of each qualified one
    assert verify(referrer.id)["ok"]


def _watch_short_video(api: Api, owner_conn: Conn, user: User, video: str) -> dict[str, Any]:
    """Watches a 10-second video as a client would (the wall clock advanced by moving the heartbeat back)."""
    hb(api, user, video, 0, 1)
    age(owner_conn, user, video, 10)
    done = hb(api, user, video, 10, 2)
    assert done["completed"], done
    return done


def test_a_referral_farm_earns_its_referrer_nothing_while_an_honest_friend_pays(api: Api, owner_conn: Conn) -> None:
    """The issue's farm: many throwaway accounts behind one code, each watching one short video and
    logging in daily. The referrer's available balance gains nothing from them; an honest friend who
    watches on several days and passes KYC qualifies, and that bonus clears."""
    cfg = config()
    referrer = api.signup()
    video = make_video(duration=10, reward=2_500)
    farm = [api.signup(referral_code=referrer.referral_code) for _ in range(20)]
    for account in farm:
        _watch_short_video(api, owner_conn, account, video)
        assert api.login(account.email).status_code == 200
    assert balance(referrer.id)["available"] == 0
    # a friend who really uses the app: earlier days of watching, KYC, and today's video
    friend = api.signup(referral_code=referrer.referral_code)
    active_days(owner_conn, friend.id, 2)
    owner_conn.execute(SET_KYC, u=friend.id, kyc="verified")
    _watch_short_video(api, owner_conn, friend, video)  # today: the third distinct day
    assert owner_conn.one(REFERRAL, u=friend.id)["status"] == "qualified"
    # time passes: the window closes on the farm, clearing runs
    s = get_settings()
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=s.referral_window_days, hours=s.clearing_referral_hours, minutes=1)
    with owner() as conn:
        while bonuses.expire_referrals(conn, now=later)["expired"]:
            pass
    clear_all_due(now=later)
    commission = bonuses.commission(2_500, cfg["referral_commission_bps"])
    bal = balance(referrer.id)
    assert bal["available"] == cfg["referral_bonus_micros"] + commission  # the friend's, nothing from the farm
    assert bal["pending"] == 0
    assert all(owner_conn.one(REFERRAL, u=a.id)["status"] == "expired" for a in farm)
    assert verify(referrer.id)["ok"]
    with get_db().connection() as conn:
        assert ledger.verify(conn, user_id=friend.id)["ok"]
