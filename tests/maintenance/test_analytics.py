"""The analytics views carry pseudonyms and aggregates only: no email, name, password hash, IP,
referral code, payout label or details, and not even the raw user id. Checked over the column
names and over the data, as the earnpay_analytics role, which can read nothing else."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

import pytest
from pg8000.exceptions import DatabaseError

from functions.ledger import service as ledger
from shared.db import Query, get_db, sqlstate
from tests.helpers import Api

VIEWS = {"analytics_users", "analytics_daily_earnings", "analytics_user_daily_earnings", "analytics_video_completions", "analytics_payouts"}
FORBIDDEN_COLUMNS = ("email", "name", "password", "ip", "referral_code", "label", "details", "provider", "user_agent", "token", "user_id")


def _q(conn: Any, sql: str, **params: Any) -> list[dict[str, Any]]:
    return conn.all(Query("t_analytics", sql, prepared=False), **params)


@pytest.fixture()
def personal_data(api: Api, owner_conn: Any) -> dict[str, Any]:
    """Two users with recognisable personal data, earnings, a completed video and a payout."""
    tag = uuid.uuid4().hex[:10]
    referrer = api.signup(email=f"alice.{tag}@example.com", name=f"Alice Secretname {tag}")
    user = api.signup(email=f"bob.{tag}@example.com", name=f"Bob Privateperson {tag}", referral_code=referrer.referral_code)
    for who, amount in ((referrer, 30_000), (user, 2_000_000)):
        with get_db().transaction() as conn:
            ledger.post(conn, user_id=who.id, type="video_reward", amount=amount, idempotency_key=uuid.uuid4().hex, source="test")
    video = _q(
        owner_conn,
        "INSERT INTO videos (title, duration_seconds, reward_micros) VALUES (:t, 60, 1000) RETURNING id::text AS id",
        t=f"v {tag}",
    )[0]["id"]
    _q(
        owner_conn,
        """INSERT INTO video_progress (user_id, video_id, position_seconds, credited_seconds, last_client_seq, playing,
                                       completed_at, reward_micros, withheld_micros)
           VALUES (CAST(:u AS uuid), CAST(:v AS uuid), 60, 60, 7, false, now(), 1000, 0) RETURNING user_id""",
        u=user.id,
        v=video,
    )
    method = _q(
        owner_conn,
        """INSERT INTO payout_methods (user_id, type, label, details)
           VALUES (CAST(:u AS uuid), 'paypal', :label, CAST(:details AS jsonb)) RETURNING id::text AS id""",
        u=user.id,
        label=f"Bob's PayPal {tag}",
        details=json.dumps({"email": f"bob.paypal.{tag}@example.com", "iban": f"DE89{tag}"}),
    )[0]["id"]
    _q(
        owner_conn,
        """INSERT INTO payout_requests (id, user_id, method_id, method_type, method_label, amount_cents, last_actor)
           VALUES (gen_random_uuid(), CAST(:u AS uuid), CAST(:m AS uuid), 'paypal', :label, 100, 'test') RETURNING id""",
        u=user.id,
        m=method,
        label=f"Bob's PayPal {tag}",
    )
    rows = _q(
        owner_conn,
        """SELECT u.id::text AS id, u.email, u.display_name, u.referral_code, u.password_hash FROM users u
            WHERE u.id IN (CAST(:a AS uuid), CAST(:b AS uuid))""",
        a=referrer.id,
        b=user.id,
    )
    ips = [
        r["ip"]
        for r in _q(
            owner_conn,
            "SELECT DISTINCT host(ip) AS ip FROM sessions WHERE user_id IN (CAST(:a AS uuid), CAST(:b AS uuid)) AND ip IS NOT NULL",
            a=referrer.id,
            b=user.id,
        )
    ]
    secrets = [v for r in rows for v in r.values()] + ips + [f"Bob's PayPal {tag}", f"bob.paypal.{tag}@example.com", f"DE89{tag}", tag]
    return {"tag": tag, "user": user, "referrer": referrer, "secrets": secrets, "ips": ips}


def test_views_exist_and_have_no_personal_columns(owner_conn: Any) -> None:
    cols = _q(
        owner_conn,
        """SELECT c.table_name, c.column_name FROM information_schema.columns c
            JOIN information_schema.views v USING (table_schema, table_name) WHERE c.table_name LIKE 'analytics%'""",
    )
    assert {c["table_name"] for c in cols} == VIEWS
    for c in cols:
        assert not any(bad in c["column_name"] for bad in FORBIDDEN_COLUMNS), c


def test_no_personal_data_in_any_view_row(owner_conn: Any, personal_data: dict[str, Any]) -> None:
    assert personal_data["ips"], "sign-up should have recorded the client address somewhere to look for"
    owner_conn.script("SET ROLE earnpay_analytics")
    try:
        text = "\n".join(r["row"] for view in sorted(VIEWS) for r in _q(owner_conn, f"SELECT row_to_json(v)::text AS row FROM {view} v"))
    finally:
        owner_conn.script("RESET ROLE")
    for secret in personal_data["secrets"]:
        assert str(secret).lower() not in text.lower(), f"{secret!r} leaked into an analytics view"
    # ...and the data is there, under the pseudonym (computed with the owner-only salt)
    salt = bytes(_q(owner_conn, "SELECT salt FROM analytics_salt")[0]["salt"])
    user, referrer = personal_data["user"], personal_data["referrer"]
    pseudonym = hashlib.sha256(salt + uuid.UUID(user.id).bytes).hexdigest()
    row = _q(owner_conn, "SELECT * FROM analytics_users WHERE user_pseudonym = :p", p=pseudonym)
    assert row and row[0]["lifetime_earned_micros"] == 2_000_000
    assert row[0]["referred_by_pseudonym"] == hashlib.sha256(salt + uuid.UUID(referrer.id).bytes).hexdigest()
    assert '"completions":' in text
    assert _q(owner_conn, "SELECT sum(payouts) AS n FROM analytics_payouts WHERE status = 'requested'")[0]["n"] >= 1


@pytest.mark.parametrize("table", ["users", "earnings", "balances", "analytics_salt", "payout_methods", "sessions"])
def test_the_analytics_role_reads_views_only(owner_conn: Any, table: str) -> None:
    owner_conn.script("SET ROLE earnpay_analytics")
    try:
        with pytest.raises(DatabaseError) as exc:
            _q(owner_conn, f"SELECT 1 AS x FROM {table} LIMIT 1")
        assert sqlstate(exc.value) == "42501"
    finally:
        owner_conn.script("RESET ROLE")


def test_erased_users_leave_the_per_user_views(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    with get_db().transaction() as conn:
        ledger.post(conn, user_id=user.id, type="video_reward", amount=10, idempotency_key=uuid.uuid4().hex, source="test")
    salt = bytes(_q(owner_conn, "SELECT salt FROM analytics_salt")[0]["salt"])
    pseudonym = hashlib.sha256(salt + uuid.UUID(user.id).bytes).hexdigest()
    assert _q(owner_conn, "SELECT 1 AS x FROM analytics_user_daily_earnings WHERE user_pseudonym = :p", p=pseudonym)
    with owner_conn.transaction():
        _q(owner_conn, "UPDATE users SET status = 'erased' WHERE id = CAST(:u AS uuid) RETURNING id", u=user.id)
        assert not _q(owner_conn, "SELECT 1 AS x FROM analytics_users WHERE user_pseudonym = :p", p=pseudonym)
        assert not _q(owner_conn, "SELECT 1 AS x FROM analytics_user_daily_earnings WHERE user_pseudonym = :p", p=pseudonym)
        owner_conn.script("ROLLBACK; BEGIN")
