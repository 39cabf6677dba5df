"""Two-factor for staff: enrolment, login with a code, recovery codes, lockout, step-up for money moves,
admin resets, and the promoted user who must enrol before any staff route answers."""

from __future__ import annotations

import uuid
from typing import Any

import pyotp
import pytest

from functions.auth import mfa
from functions.auth.queries import SET_ROLE
from functions.auth.service import create_admin
from shared.db import Query, get_db
from shared.mail import LocalMailServer
from tests.helpers import PASSWORD, Api, User, error_code, random_ip, unique_email

STALE_STEP_UP = Query(
    "test_stale_step_up", "UPDATE sessions SET step_up_at = now() - interval '6 minutes' WHERE user_id = CAST(:id AS uuid)"
)
AUDIT = Query(
    "test_mfa_audit",
    "SELECT actor_id::text AS actor_id, action FROM audit_log WHERE target_id = :target AND action = 'user.mfa_reset'",
    prepared=False,
)


@pytest.fixture()
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Any:
    from shared.config import get_settings

    def set_env(**env: Any) -> None:
        for key, value in env.items():
            monkeypatch.setenv(key, str(value))
        get_settings.cache_clear()

    return set_env


def _adjust(api: Api, admin: User, user: User) -> Any:
    return api.post(
        "/admin/adjustments",
        user=admin,
        json={"user_id": user.id, "amount_micros": 1_000, "reason": "goodwill"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )


def test_enrolment_gives_a_uri_a_qr_code_and_ten_recovery_codes(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    owner_conn.execute(SET_ROLE, id=user.id, role="support")
    login = api.login(user.email, ip=user.ip)
    assert login.status_code == 200 and login.get_json()["mfa"] == "enrolment_required"
    user.token = login.get_json()["session"]["token"]
    # promoted from a user: no staff route answers before enrolment
    blocked = api.get("/admin/users", user=user)
    assert blocked.status_code == 403 and error_code(blocked) == "mfa_required"
    enrolment = api.post("/auth/mfa/enrol", user=user).get_json()
    assert enrolment["otpauth_uri"].startswith("otpauth://totp/EarnPay:") and "secret=" + enrolment["secret"] in enrolment["otpauth_uri"]
    assert enrolment["qr_svg"].lstrip().startswith("<?xml") or "<svg" in enrolment["qr_svg"]
    user.mfa_secret = enrolment["secret"]
    wrong = api.post("/auth/mfa/confirm", user=user, json={"code": "000000"})
    assert wrong.status_code == 401 and error_code(wrong) == "invalid_mfa_code"
    codes = api.post("/auth/mfa/confirm", user=user, json={"code": user.mfa_code()}).get_json()["recovery_codes"]
    assert len(codes) == 10 == len(set(codes))
    assert api.get("/admin/users", user=user).status_code == 200
    assert api.post("/auth/mfa/enrol", user=user).status_code == 409
    stored = owner_conn.all(Query("test_codes", "SELECT code_hash FROM mfa_recovery_codes WHERE user_id = CAST(:id AS uuid)"), id=user.id)
    assert len(stored) == 10 and all(bytes(r["code_hash"]) not in [c.encode() for c in codes] for r in stored)
    # a plain user has no second factor to enrol
    plain = api.signup()
    assert error_code(api.post("/auth/mfa/enrol", user=plain)) == "role_forbidden"


def test_login_needs_the_code_which_works_once_and_wrong_codes_lock(api: Api, owner_conn: Any, settings_env: Any) -> None:
    staff = api.staff(owner_conn, "support")
    no_code = api.login(staff.email)
    assert no_code.status_code == 401 and error_code(no_code) == "mfa_code_required"
    code = staff.mfa_code()
    ok = api.client.post(
        "/auth/login", json={"email": staff.email, "password": PASSWORD, "mfa_code": code}, headers={"X-Forwarded-For": staff.ip}
    )
    assert ok.status_code == 200 and ok.get_json()["mfa"] == "verified"
    session = {"Authorization": f"Bearer {ok.get_json()['session']['token']}"}
    assert api.get("/auth/session", headers=session).get_json()["mfa"] is True
    replay = api.client.post(
        "/auth/login", json={"email": staff.email, "password": PASSWORD, "mfa_code": code}, headers={"X-Forwarded-For": staff.ip}
    )
    assert replay.status_code == 401 and error_code(replay) == "invalid_mfa_code"  # a used code is refused
    settings_env(MFA_MAX_FAILURES=3)
    for _ in range(2):
        bad = api.client.post(
            "/auth/login", json={"email": staff.email, "password": PASSWORD, "mfa_code": "123456"}, headers={"X-Forwarded-For": random_ip()}
        )
        assert error_code(bad) == "invalid_mfa_code"
    locked = api.client.post(
        "/auth/login",
        json={"email": staff.email, "password": PASSWORD, "mfa_code": staff.mfa_code()},
        headers={"X-Forwarded-For": staff.ip},
    )
    assert locked.status_code == 429 and error_code(locked) == "mfa_locked"
    failures = owner_conn.value(
        Query("test_failed_logins", "SELECT count(*) FROM login_attempts WHERE user_id = CAST(:id AS uuid) AND NOT succeeded"), id=staff.id
    )
    assert failures >= 3  # wrong codes count toward the login lock too


def test_recovery_codes_work_once(api: Api, owner_conn: Any) -> None:
    with get_db().transaction() as conn:
        from functions.auth.service import create_user

        user = create_user(conn, email=unique_email("rec"), password=PASSWORD, display_name="Rec", role="finance")
        enrolment = mfa.enrol_now(conn, user["id"])
    code = enrolment["recovery_codes"][0]
    first = api.client.post(
        "/auth/login", json={"email": user["email"], "password": PASSWORD, "mfa_code": code}, headers={"X-Forwarded-For": random_ip()}
    )
    assert first.status_code == 200, first.get_data(as_text=True)
    again = api.client.post(
        "/auth/login", json={"email": user["email"], "password": PASSWORD, "mfa_code": code}, headers={"X-Forwarded-For": random_ip()}
    )
    assert again.status_code == 401 and error_code(again) == "invalid_mfa_code"


def test_money_moves_need_a_recent_code(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    user = api.signup()
    assert _adjust(api, admin, user).status_code == 201  # enrolment just stepped up
    owner_conn.execute(STALE_STEP_UP, id=admin.id)
    for resp in (
        _adjust(api, admin, user),
        api.post(f"/admin/users/{user.id}/role", user=admin, json={"role": "support"}),
        api.post(f"/admin/payouts/{uuid.uuid4()}/approve", user=admin),
        api.post(f"/admin/payouts/{uuid.uuid4()}/reject", user=admin, json={"reason": "no"}),
        api.post(f"/admin/users/{user.id}/mfa/reset", user=admin),
        api.post(f"/admin/users/{user.id}/entries/1/reverse", user=admin, json={"reason": "clawback"}),
    ):
        assert resp.status_code == 403 and error_code(resp) == "step_up_required", resp.get_data(as_text=True)
    assert api.get("/admin/users", user=admin).status_code == 200  # reading needs no step-up
    used = admin.mfa_code()
    assert api.post("/auth/mfa/step-up", user=admin, json={"code": used}).status_code == 200
    assert _adjust(api, admin, user).status_code == 201
    owner_conn.execute(STALE_STEP_UP, id=admin.id)
    again = api.post("/auth/mfa/step-up", user=admin, json={"code": used})
    assert again.status_code == 401 and error_code(again) == "invalid_mfa_code"


def test_admin_resets_another_staff_members_mfa_but_not_their_own(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    finance = api.staff(owner_conn, "finance")
    own = api.post(f"/admin/users/{admin.id}/mfa/reset", user=admin)
    assert own.status_code == 403 and error_code(own) == "own_mfa_reset"
    resp = api.post(f"/admin/users/{finance.id}/mfa/reset", user=admin)
    assert resp.status_code == 200 and resp.get_json()["removed"] is True and resp.get_json()["sessions_revoked"] >= 1
    assert api.get("/auth/me", user=finance).status_code == 401
    login = api.login(finance.email, ip=finance.ip)
    assert login.status_code == 200 and login.get_json()["mfa"] == "enrolment_required"
    assert owner_conn.all(AUDIT, target=finance.id) == [{"actor_id": admin.id, "action": "user.mfa_reset"}]


def test_create_admin_enrols_the_first_admin(api: Api) -> None:
    email = unique_email("first-admin")
    with get_db().transaction() as conn:
        created = create_admin(conn, email, "a long admin password", "First Admin")
    enrolment = created["mfa"]
    assert len(enrolment["recovery_codes"]) == 10 and created["email_verified"] is True
    assert api.login(email, "a long admin password").status_code == 401
    code = pyotp.TOTP(enrolment["secret"]).now()
    ok = api.client.post(
        "/auth/login",
        json={"email": email, "password": "a long admin password", "mfa_code": code},
        headers={"X-Forwarded-For": random_ip()},
    )
    assert ok.status_code == 200 and ok.get_json()["mfa"] == "verified"


@pytest.mark.pubsub
def test_staff_enrol_login_with_a_code_and_a_money_move_end_to_end(api: Api, owner_conn: Any, mail: LocalMailServer) -> None:
    """Signup -> email -> verify; promoted; enrol; login with a code; an adjustment with step-up."""
    from tests.fixtures.mail import link_token

    email = unique_email("staff-e2e")
    ip = random_ip()
    assert (
        api.client.post(
            "/auth/signup", json={"email": email, "password": PASSWORD, "display_name": "Staff"}, headers={"X-Forwarded-For": ip}
        ).status_code
        == 202
    )
    (msg,) = mail.wait_for(email, subject="Confirm your email")
    verified = api.post("/auth/email/verify", json={"token": link_token(msg)}).get_json()
    staff = User(verified["user"]["id"], email, verified["session"]["token"], verified["user"]["referral_code"], ip)
    owner_conn.execute(SET_ROLE, id=staff.id, role="admin")
    staff.token = api.login(email, ip=ip).get_json()["session"]["token"]
    staff.mfa_secret = api.post("/auth/mfa/enrol", user=staff).get_json()["secret"]
    assert api.post("/auth/mfa/confirm", user=staff, json={"code": staff.mfa_code()}).status_code == 200
    login = api.client.post(
        "/auth/login", json={"email": email, "password": PASSWORD, "mfa_code": staff.mfa_code()}, headers={"X-Forwarded-For": ip}
    )
    assert login.status_code == 200 and login.get_json()["mfa"] == "verified"
    staff.token = login.get_json()["session"]["token"]
    owner_conn.execute(STALE_STEP_UP, id=staff.id)
    target = api.signup()
    assert error_code(_adjust(api, staff, target)) == "step_up_required"
    api.step_up(staff)
    assert _adjust(api, staff, target).status_code == 201
