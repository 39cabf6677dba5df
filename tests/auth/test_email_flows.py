"""Email verification, password reset, email change and notifications, end to end: every email goes
outbox -> the real Pub/Sub emulator -> push -> send_notifications -> the real SMTP server (aiosmtpd)."""

from __future__ import annotations

import base64
import json
import statistics
import time
from typing import Any

import pytest

from shared.db import Query, get_db
from shared.mail import LocalMailServer, html_part, text_part
from tests.fixtures.mail import link_token
from tests.helpers import PASSWORD, Api, error_code, random_ip, unique_email, verification_token

NOTIFICATION_IDS = Query("test_notification_ids", "SELECT id FROM notifications WHERE user_id = CAST(:id AS uuid) ORDER BY id")
TOKENS = Query("test_tokens", "SELECT purpose, used_at FROM account_tokens WHERE user_id = CAST(:id AS uuid) ORDER BY id")


@pytest.fixture()
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    from shared.config import get_settings

    def set_env(**env: Any) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        get_settings.cache_clear()

    return set_env


def _signup(api: Api, email: str, ip: str | None = None) -> Any:
    return api.client.post(
        "/auth/signup",
        json={"email": email, "password": PASSWORD, "display_name": "Mail Test"},
        headers={"X-Forwarded-For": ip or random_ip()},
    )


@pytest.mark.pubsub
def test_signup_email_verify_signs_in_and_the_link_works_once(api: Api, mail: LocalMailServer) -> None:
    email = unique_email("verify")
    resp = _signup(api, email)
    assert resp.status_code == 202 and resp.get_json()["status"] == "accepted"
    assert "session" not in resp.get_json()
    (msg,) = mail.wait_for(email, subject="Confirm your email")
    assert msg["To"] == email and "EarnPay" in str(msg["From"])
    assert "http://127.0.0.1:8080/app/verify-email?token=" in text_part(msg)  # every link from PUBLIC_BASE_URL
    assert "/app/verify-email?token=" in html_part(msg) and "<a href=" in html_part(msg)
    token = link_token(msg)
    ok = api.post("/auth/email/verify", json={"token": token})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    body = ok.get_json()
    assert body["user"]["email"] == email and body["user"]["email_verified"] is True
    me = api.get("/auth/me", headers={"Authorization": f"Bearer {body['session']['token']}"})
    assert me.status_code == 200 and me.get_json()["email_verified"] is True
    again = api.post("/auth/email/verify", json={"token": token})
    assert again.status_code == 400 and error_code(again) == "invalid_token"


@pytest.mark.pubsub
def test_signup_for_a_taken_address_tells_its_owner_and_answers_the_same(api: Api, mail: LocalMailServer) -> None:
    user = api.signup()
    fresh = _signup(api, unique_email())
    dup = _signup(api, user.email.upper())
    assert dup.status_code == fresh.status_code == 202 and dup.get_json() == fresh.get_json()
    (msg,) = mail.wait_for(user.email, subject="Someone tried to sign up")
    assert "token=" not in text_part(msg)


def test_bad_tokens_are_a_clear_400_and_change_nothing(api: Api, owner_conn: Any) -> None:
    user = api.signup_unverified()
    verify = verification_token(user.email)
    # forged, cross-purpose (a verification token on the reset and change routes), expired
    for path, body in (
        ("/auth/email/verify", {"token": "x" * 43}),
        ("/auth/password/reset", {"token": verify, "new_password": "another long password"}),
        ("/auth/email/change/confirm", {"token": verify}),
    ):
        resp = api.post(path, json=body)
        assert resp.status_code == 400 and error_code(resp) == "invalid_token", (path, resp.get_data(as_text=True))
    assert api.login(user.email).status_code == 200  # the password did not change
    owner_conn.execute(
        Query(
            "test_expire_tokens",
            "UPDATE account_tokens SET created_at = now() - interval '3 days', expires_at = now() - interval '1 day' "
            "WHERE user_id = CAST(:id AS uuid)",
        ),
        id=user.id,
    )
    resp = api.post("/auth/email/verify", json={"token": verify})
    assert resp.status_code == 400 and error_code(resp) == "invalid_token"
    assert api.get("/auth/me", user=user).get_json()["email_verified"] is False
    assert api.post("/auth/email/verify", json={"token": ""}).status_code == 422


def test_unverified_accounts_earn_but_cannot_cash_out(api: Api, owner_conn: Any) -> None:
    from tests.payouts.test_requests import SET_KYC, fund

    user = api.signup_unverified()
    owner_conn.execute(SET_KYC, id=user.id, kyc="verified")
    fund(user.id, 10_000)
    resp = api.post("/payouts/", user=user, json={"amount_cents": 2_000, "password": PASSWORD})
    assert resp.status_code == 403 and error_code(resp) == "email_unverified"
    resend = api.post("/auth/email/verification", user=user)
    assert resend.status_code == 202
    again = api.post("/auth/email/verification", user=user)
    assert again.status_code == 429  # once a minute


@pytest.mark.pubsub
def test_reset_emails_a_link_sets_the_password_and_revokes_every_session(api: Api, mail: LocalMailServer) -> None:
    user = api.signup()
    other = api.login(user.email).get_json()["session"]["token"]
    resp = api.post("/auth/password/forgot", json={"email": user.email})
    unknown = api.post("/auth/password/forgot", json={"email": unique_email("nobody")})
    assert resp.status_code == unknown.status_code == 202 and resp.get_json() == unknown.get_json()
    (msg,) = mail.wait_for(user.email, subject="Reset your password")
    token = link_token(msg)
    assert "/app/reset-password?token=" in text_part(msg)
    # a reset token is not a verification token
    assert error_code(api.post("/auth/email/verify", json={"token": token})) == "invalid_token"
    new = "a brand new passphrase"
    ok = api.post("/auth/password/reset", json={"token": token, "new_password": new})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    for session in (user.token, other):
        assert api.get("/auth/me", headers={"Authorization": f"Bearer {session}"}).status_code == 401
    assert api.login(user.email).status_code == 401 and api.login(user.email, new).status_code == 200
    reused = api.post("/auth/password/reset", json={"token": token, "new_password": "yet another passphrase"})
    assert reused.status_code == 400 and error_code(reused) == "invalid_token"
    mail.wait_for(user.email, subject="Your password was changed")
    assert len(mail.to(user.email)) >= 2


def test_reset_requests_are_throttled_per_account_silently_and_per_address(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    statuses = [api.post("/auth/password/forgot", json={"email": user.email}).status_code for _ in range(6)]
    assert statuses == [202] * 5 + [429]  # per address: the same for an unknown one
    unknown = unique_email("nobody")
    assert [api.post("/auth/password/forgot", json={"email": unknown}).status_code for _ in range(6)] == [202] * 5 + [429]
    kinds = [
        r["kind"]
        for r in owner_conn.all(Query("test_kinds", "SELECT kind FROM notifications WHERE user_id = CAST(:id AS uuid)"), id=user.id)
    ]
    assert kinds.count("reset_password") == 3  # per account: at most 3 links an hour, refused without a sign


@pytest.mark.pubsub
def test_email_change_proves_the_new_address_and_tells_the_old(api: Api, mail: LocalMailServer) -> None:
    user = api.signup()
    new = unique_email("moved")
    wrong = api.post("/auth/email/change", user=user, json={"new_email": new, "password": "not my password"})
    assert wrong.status_code == 401
    resp = api.post("/auth/email/change", user=user, json={"new_email": new, "password": PASSWORD})
    assert resp.status_code == 202
    assert api.get("/auth/me", user=user).get_json()["email"] == user.email  # not before it is proved
    (msg,) = mail.wait_for(new, subject="Confirm your new email")
    ok = api.post("/auth/email/change/confirm", json={"token": link_token(msg)})
    assert ok.status_code == 200 and ok.get_json()["user"]["email"] == new and ok.get_json()["session"] is None
    (notice,) = mail.wait_for(user.email, subject="Your email address was changed")
    assert new in text_part(notice)
    assert api.login(new).status_code == 200 and api.login(user.email).status_code == 401


@pytest.mark.pubsub
def test_a_payout_paid_sends_an_email(api: Api, owner_conn: Any, mail: LocalMailServer) -> None:
    from functions.payouts import events
    from tests.payouts.test_batches import _event, approved

    (pid,), (user_id,) = approved(api, owner_conn, [1_500])
    events.process_payouts(_event({"batch_size": 100}))  # as the payout-batches push delivers it
    email = owner_conn.value(Query("test_email_of", "SELECT email FROM users WHERE id = CAST(:id AS uuid)"), id=user_id)
    (msg,) = mail.wait_for(email, subject="Your payout was paid")
    assert "$15.00" in text_part(msg) and f"/app/payouts/{pid}" in text_part(msg)


def test_a_redelivered_message_sends_nothing_twice(api: Api, client: Any, mail_server: LocalMailServer) -> None:
    user = api.signup()
    resp = api.post("/auth/password", user=user, json={"current_password": PASSWORD, "new_password": "a changed passphrase"})
    assert resp.status_code == 200
    with get_db().connection() as conn:
        nid = conn.all(NOTIFICATION_IDS, id=user.id)[-1]["id"]
    body = {
        "message": {"data": base64.b64encode(json.dumps({"notification_id": nid}).encode()).decode(), "messageId": f"m-{nid}"},
        "subscription": "projects/earnpay-test/subscriptions/notifications-push",
    }
    for _ in range(3):
        assert client.post("/send_notifications", json=body).status_code == 200
    assert len(mail_server.wait_for(user.email, subject="Your password was changed", timeout=2)) == 1
    listed = api.get("/auth/notifications", user=user).get_json()
    assert listed["items"][0]["kind"] == "password_changed" and listed["items"][0]["emailed_at"] is not None


def test_a_new_device_is_notified_and_listed(api: Api) -> None:
    user = api.signup()
    assert api.login(user.email, ip=user.ip).status_code == 200  # the same device: nothing
    other = api.login(user.email, ip="192.0.2.10")
    assert other.status_code == 200
    items = api.get("/auth/notifications", user=user).get_json()["items"]
    assert [i["kind"] for i in items] == ["new_device", "verify_email"] and items[0]["data"]["ip"] == "192.0.2.10"
    assert api.get("/auth/notifications?limit=0", user=user).status_code == 422


def _medians_ms(a: Any, b: Any, n: int) -> tuple[float, float]:
    """Median times of ``a`` and ``b``, called alternately (so load on the machine hits both alike)."""
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(n):
        for fn, out in ((a, times[0]), (b, times[1])):
            started = time.perf_counter()
            fn()
            out.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[0]), statistics.median(times[1])


def test_no_enumeration_by_timing(api: Api, settings_env: Any) -> None:
    """Sign-up and reset for a known and an unknown address take the same time: medians of many tries,
    interleaved, with a generous bound (the machine is shared and noisy). Both sign-up paths hash the
    password (the expensive part); an early answer for a taken address would be ~40 ms faster."""
    settings_env(IP_SIGNUP_PER_HOUR=1000)
    known = api.signup()
    ip = random_ip()
    body = lambda email: {"email": email, "password": PASSWORD, "display_name": "Timing"}  # noqa: E731
    known_signup, new_signup = _medians_ms(
        lambda: api.client.post("/auth/signup", json=body(known.email), headers={"X-Forwarded-For": ip}),
        lambda: api.client.post("/auth/signup", json=body(unique_email()), headers={"X-Forwarded-For": ip}),
        21,
    )
    assert abs(known_signup - new_signup) < max(20.0, 0.5 * min(known_signup, new_signup)), (known_signup, new_signup)
    known_reset, unknown_reset = _medians_ms(
        lambda: api.post("/auth/password/forgot", json={"email": known.email}),
        lambda: api.post("/auth/password/forgot", json={"email": unique_email()}),
        5,
    )
    assert abs(known_reset - unknown_reset) < max(15.0, 0.5 * min(known_reset, unknown_reset)), (known_reset, unknown_reset)


def test_plain_smtp_is_refused_when_deployed_and_a_login_needs_its_password() -> None:
    from shared.config import get_settings
    from shared.mail import MailConfigError, SmtpSender

    settings = get_settings()
    with pytest.raises(MailConfigError, match="SMTP_TLS=none"):
        SmtpSender(settings.model_copy(update={"env": "production", "smtp_tls": "none"}))
    with pytest.raises(MailConfigError, match="SMTP_PASSWORD"):
        SmtpSender(settings.model_copy(update={"smtp_username": "apikey", "smtp_password": None}))
    SmtpSender(settings.model_copy(update={"env": "production", "smtp_tls": "starttls"}))  # TLS: accepted


def test_review_state_changes_are_notified_but_silent_watching_is_not(api: Api) -> None:
    """Trust and safety's state changes reach the user as "account_review" (never the rules behind them)."""
    from functions.risk import service as risk

    user = api.signup()

    def move(from_state: str, to_state: str) -> None:
        with get_db().transaction() as conn:
            risk.transition(conn, user.id, from_state, to_state, actor_kind="rules", actor_id=None, reason="rules: test (9 >= 3)", score=9)

    def reviews() -> list[Any]:
        items = api.get("/auth/notifications", user=user).get_json()["items"]
        return [i["data"]["state"] for i in items if i["kind"] == "account_review"]

    move("ok", "watch")
    assert reviews() == []  # monitoring is silent
    move("watch", "review")
    move("review", "ok")
    assert reviews() == ["ok", "review"]  # newest first
    assert all("rules" not in str(i["data"]) for i in api.get("/auth/notifications", user=user).get_json()["items"])
