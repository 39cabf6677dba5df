"""Sign-up, login, sessions and their protections, through the real auth function."""

from __future__ import annotations

from typing import Any

import pytest

from shared.db import Query
from tests.helpers import PASSWORD, Api, error_code, random_ip, unique_email

COUNT_USERS = Query("t_count_users", "SELECT count(*) FROM users", prepared=False)


@pytest.fixture()
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Sets configuration variables for one test and re-reads the settings around it."""
    from shared.config import get_settings

    def set_(**values: Any) -> None:
        for key, value in values.items():
            monkeypatch.setenv(key, str(value))
        get_settings.cache_clear()

    yield set_
    monkeypatch.undo()
    get_settings.cache_clear()


def test_signup_login_me_logout(api: Api) -> None:
    user = api.signup(email=unique_email("Mixed.Case").upper())
    assert user.email == user.email.lower()
    me = api.get("/auth/me", user=user)
    assert me.status_code == 200
    assert me.get_json()["id"] == user.id
    assert me.get_json()["role"] == "user"
    assert "password_hash" not in me.get_json()
    assert me.headers["X-Request-Id"]

    resp = api.login(user.email.upper())
    assert resp.status_code == 200, resp.get_data(as_text=True)
    token = resp.get_json()["session"]["token"]
    assert len(token) >= 43

    out = api.post("/auth/logout", user=user)
    assert out.status_code == 200
    assert api.get("/auth/me", user=user).status_code == 401
    # the other session (from the login above) is still alive
    assert api.get("/auth/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_only_a_hash_of_the_token_is_stored(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    rows = owner_conn.all(Query("t_tokens", "SELECT token_hash FROM sessions WHERE user_id = CAST(:u AS uuid)", prepared=False), u=user.id)
    assert rows and all(bytes(r["token_hash"]) != user.token.encode() and len(bytes(r["token_hash"])) == 32 for r in rows)


def test_duplicate_email_is_case_insensitive(api: Api) -> None:
    email = unique_email()
    api.signup(email=email)
    fresh = api.post("/auth/signup", json={"email": unique_email(), "password": PASSWORD, "display_name": "New"})
    resp = api.post("/auth/signup", json={"email": email.upper(), "password": PASSWORD, "display_name": "Dup"})
    # The same answer as for a new address (no enumeration); the owner is told by email instead.
    assert resp.status_code == fresh.status_code == 202
    assert resp.get_json() == fresh.get_json()
    assert api.login(email).status_code == 200  # the first account is untouched


def test_referral_code_links_the_referrer_and_unknown_code_is_refused(api: Api, owner_conn: Any) -> None:
    referrer = api.signup()
    friend = api.signup(referral_code=referrer.referral_code.lower())
    assert api.get("/auth/me", user=friend).get_json()["referred_by"] == referrer.id
    before = owner_conn.value(COUNT_USERS)
    resp = api.post("/auth/signup", json={"email": unique_email(), "password": PASSWORD, "display_name": "X", "referral_code": "ZZZZZZZZ"})
    assert resp.status_code == 422
    assert error_code(resp) == "unknown_referral_code"
    assert owner_conn.value(COUNT_USERS) == before


def test_referral_codes_use_an_unambiguous_alphabet(api: Api) -> None:
    codes = [api.signup().referral_code for _ in range(5)]
    assert all(len(c) == 8 and not set(c) & set("01OIL") for c in codes)
    assert len(set(codes)) == 5


def test_unknown_email_and_wrong_password_give_the_same_error(api: Api) -> None:
    user = api.signup()
    wrong = api.login(user.email, "not the password at all")
    unknown = api.login(unique_email(), "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.get_json()["error"] == unknown.get_json()["error"]


def test_soft_lock_after_failures_spares_known_ips_and_expires(api: Api, owner_conn: Any, settings_env: Any) -> None:
    settings_env(LOGIN_MAX_FAILURES=3, LOGIN_LOCK_MINUTES=15)
    user = api.signup()
    home_ip = random_ip()
    assert api.login(user.email, ip=home_ip).status_code == 200  # the user's known address
    attacker = random_ip()
    for _ in range(3):
        assert api.login(user.email, "wrong password!!", ip=attacker).status_code == 401
    locked = api.login(user.email, PASSWORD, ip=attacker)
    assert locked.status_code == 429
    assert error_code(locked) == "login_temporarily_locked"
    assert int(locked.headers["Retry-After"]) > 0
    # the real user, from an address that logged in before, is never locked out
    assert api.login(user.email, ip=home_ip).status_code == 200
    # a success resets the count; further failures lock again but only temporarily
    for _ in range(3):
        api.login(user.email, "wrong password!!", ip=attacker)
    assert api.login(user.email, ip=random_ip()).status_code == 429
    owner_conn.execute(
        Query("t_age", "UPDATE login_attempts SET created_at = created_at - interval '16 minutes' WHERE email = :e", prepared=False),
        e=user.email,
    )
    assert api.login(user.email, ip=random_ip()).status_code == 200


def test_per_ip_login_throttle(api: Api, settings_env: Any) -> None:
    settings_env(IP_LOGIN_PER_MINUTE=4)
    ip = random_ip()
    codes = [api.login(unique_email(), "whatever-password", ip=ip).status_code for _ in range(6)]
    assert codes[:4] == [401] * 4
    assert codes[4:] == [429, 429]
    assert api.login(unique_email(), "whatever-password", ip=random_ip()).status_code == 401


def test_per_ip_signup_throttle(api: Api, settings_env: Any, owner_conn: Any) -> None:
    settings_env(IP_SIGNUP_PER_HOUR=2)
    ip = random_ip()
    body = lambda: {"email": unique_email(), "password": PASSWORD, "display_name": "T"}  # noqa: E731
    statuses = [api.client.post("/auth/signup", json=body(), headers={"X-Forwarded-For": ip}).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]


def test_per_user_rate_limit_answers_429_with_retry_after(api: Api, settings_env: Any) -> None:
    user = api.signup()
    settings_env(USER_REQUESTS_PER_MINUTE=3)
    statuses = [api.get("/auth/me", user=user) for _ in range(5)]
    assert [r.status_code for r in statuses] == [200, 200, 200, 429, 429]
    assert 1 <= int(statuses[-1].headers["Retry-After"]) <= 60
    assert error_code(statuses[-1]) == "rate_limited"


def test_idle_and_absolute_session_timeouts(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    set_ = Query("t_idle", "UPDATE sessions SET last_seen_at = now() - interval '8 days' WHERE user_id = CAST(:u AS uuid)", prepared=False)
    owner_conn.execute(set_, u=user.id)
    assert api.get("/auth/me", user=user).status_code == 401
    other = api.signup()
    owner_conn.execute(
        Query(
            "t_abs",
            "UPDATE sessions SET expires_at = now() - interval '1 second', created_at = now() - interval '31 days'"
            " WHERE user_id = CAST(:u AS uuid)",
            prepared=False,
        ),
        u=other.id,
    )
    assert api.get("/auth/me", user=other).status_code == 401


def test_staff_sessions_are_shorter(api: Api, owner_conn: Any) -> None:
    staff = api.staff(owner_conn, "finance")
    row = owner_conn.one(
        Query(
            "t_staff_sess",
            """SELECT extract(epoch FROM idle_timeout)::int AS idle, extract(epoch FROM expires_at - created_at)::int AS life
                 FROM sessions WHERE user_id = CAST(:u AS uuid) ORDER BY id DESC LIMIT 1""",
            prepared=False,
        ),
        u=staff.id,
    )
    assert row == {"idle": 30 * 60, "life": 8 * 3600}


def test_password_change_revokes_other_sessions(api: Api) -> None:
    user = api.signup()
    second = api.login(user.email).get_json()["session"]["token"]
    resp = api.post("/auth/password", user=user, json={"current_password": PASSWORD, "new_password": "an entirely new secret"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert api.get("/auth/me", user=user).status_code == 200
    assert api.get("/auth/me", headers={"Authorization": f"Bearer {second}"}).status_code == 401
    assert api.login(user.email).status_code == 401
    assert api.login(user.email, "an entirely new secret").status_code == 200


def test_password_change_needs_the_current_password(api: Api) -> None:
    user = api.signup()
    resp = api.post("/auth/password", user=user, json={"current_password": "wrong wrong wrong", "new_password": "an entirely new secret"})
    assert resp.status_code == 401
    assert error_code(resp) == "reauthentication_failed"
    assert api.login(user.email).status_code == 200


def test_login_rehashes_when_parameters_are_raised(api: Api, owner_conn: Any, settings_env: Any) -> None:
    from functions.auth import passwords

    user = api.signup()
    get_hash = Query("t_hash", "SELECT password_hash FROM users WHERE id = CAST(:u AS uuid)", prepared=False)
    assert "t=2" in owner_conn.value(get_hash, u=user.id)
    settings_env(ARGON2_TIME_COST=3)
    passwords.hasher.cache_clear()
    try:
        assert api.login(user.email).status_code == 200
        assert "t=3" in owner_conn.value(get_hash, u=user.id)
    finally:
        passwords.hasher.cache_clear()


def test_missing_or_garbage_tokens(api: Api) -> None:
    assert error_code(api.get("/auth/me")) == "missing_session"
    assert api.get("/auth/me", headers={"Authorization": "Bearer " + "x" * 43}).status_code == 401
    assert api.get("/auth/me", headers={"Authorization": "Basic abc"}).status_code == 401
    assert api.get("/auth/me", headers={"Authorization": "Bearer " + "x" * 5000}).status_code == 401


def test_blocked_account_cannot_use_its_session(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    owner_conn.execute(Query("t_block", "UPDATE users SET status = 'blocked' WHERE id = CAST(:u AS uuid)", prepared=False), u=user.id)
    resp = api.get("/auth/me", user=user)
    assert resp.status_code == 403
    assert api.login(user.email).status_code == 403


def test_create_admin_makes_a_staff_account(database: str) -> None:
    from functions.auth.service import create_admin
    from shared.db import get_db

    with get_db().transaction() as conn:
        user = create_admin(conn, unique_email("Admin"), "a long admin password", "Root")
    assert user["role"] == "admin"
