"""Small helpers for tests that speak HTTP to the functions-framework apps."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from typing import Any

from werkzeug.test import Client, TestResponse

PASSWORD = "correct horse battery staple"


def random_ip() -> str:
    """A distinct client address per caller, so per-IP throttles of one test never touch another."""
    # SystemRandom: hypothesis seeds the global ``random``, which would hand every example one address
    rng = random.SystemRandom()
    return f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def unique_email(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


@dataclass
class User:
    id: str
    email: str
    token: str
    referral_code: str
    ip: str
    mfa_secret: str | None = None  # staff: the TOTP secret enrolled by ``Api.staff``
    mfa_step: int = 0  # the last TOTP time step used (a code is accepted once)

    def mfa_code(self) -> str:
        """A TOTP code not used before: the current step's, else the next one's (the server accepts one step
        ahead for clock drift); a third code within one 30 s step waits for the clock."""
        import time

        import pyotp

        assert self.mfa_secret, "not an enrolled staff user"
        step = max(int(time.time() // 30), self.mfa_step + 1)
        while step > int(time.time() // 30) + 1:  # the server accepts one step of drift: wait for the clock
            time.sleep(0.5)
        self.mfa_step = step
        return str(pyotp.TOTP(self.mfa_secret).generate_otp(step))

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "X-Forwarded-For": self.ip}


class Api:
    """Calls the local dispatcher as a client app would."""

    def __init__(self, client: Client) -> None:
        self.client = client

    def call(
        self, method: str, path: str, *, user: User | None = None, json: Any = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> TestResponse:
        hdrs = dict(user.headers if user else {"X-Forwarded-For": random_ip()})
        hdrs.update(headers or {})
        return self.client.open(path, method=method, json=json, headers=hdrs, **kw)

    def get(self, path: str, **kw: Any) -> TestResponse:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> TestResponse:
        return self.call("POST", path, **kw)

    def signup(
        self, *, email: str | None = None, password: str = PASSWORD, referral_code: str | None = None, name: str = "Test User"
    ) -> User:
        """Signs up and verifies the address as the emailed link would (POST /auth/email/verify with a token
        issued the way send_notifications issues it), which answers the first session."""
        ip = random_ip()
        body: dict[str, Any] = {"email": email or unique_email(), "password": password, "display_name": name}
        if referral_code:
            body["referral_code"] = referral_code
        resp = self.client.post("/auth/signup", json=body, headers={"X-Forwarded-For": ip})
        assert resp.status_code == 202, resp.get_data(as_text=True)
        token = verification_token(body["email"])
        resp = self.client.post("/auth/email/verify", json={"token": token}, headers={"X-Forwarded-For": ip})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        data = resp.get_json()
        return User(data["user"]["id"], data["user"]["email"], data["session"]["token"], data["user"]["referral_code"], ip)

    def signup_unverified(self, *, email: str | None = None, password: str = PASSWORD, name: str = "Test User") -> User:
        """Signs up and signs in without verifying the address (the account can watch and earn, not cash out)."""
        ip = random_ip()
        email = email or unique_email()
        resp = self.client.post(
            "/auth/signup", json={"email": email, "password": password, "display_name": name}, headers={"X-Forwarded-For": ip}
        )
        assert resp.status_code == 202, resp.get_data(as_text=True)
        resp = self.login(email, password, ip=ip)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        data = resp.get_json()
        return User(data["user"]["id"], email, data["session"]["token"], data["user"]["referral_code"], ip)

    def login(self, email: str, password: str = PASSWORD, ip: str | None = None) -> TestResponse:
        return self.client.post("/auth/login", json={"email": email, "password": password}, headers={"X-Forwarded-For": ip or random_ip()})

    def staff(self, owner_conn: Any, role: str) -> User:
        """A fresh account promoted to ``role`` (by the owner, as create-admin would), logged in again and
        enrolled in two-factor (enrol, confirm with a code): its session has just stepped up."""
        from functions.auth.queries import SET_ROLE

        user = self.signup(name=f"{role} staff")
        owner_conn.execute(SET_ROLE, id=user.id, role=role)
        resp = self.login(user.email, ip=user.ip)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        user.token = resp.get_json()["session"]["token"]
        enrolment = self.post("/auth/mfa/enrol", user=user)
        assert enrolment.status_code == 200, enrolment.get_data(as_text=True)
        user.mfa_secret = enrolment.get_json()["secret"]
        resp = self.post("/auth/mfa/confirm", user=user, json={"code": user.mfa_code()})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return user

    def step_up(self, user: User) -> None:
        resp = self.post("/auth/mfa/step-up", user=user, json={"code": user.mfa_code()})
        assert resp.status_code == 200, resp.get_data(as_text=True)


def verification_token(email: str) -> str:
    """A sign-up verification token for ``email``, issued as send_notifications issues the one it emails."""
    from functions.auth import tokens
    from shared.db import Query, get_db

    with get_db().transaction() as conn:
        user_id = conn.value(Query("test_user_id_by_email", "SELECT id::text FROM users WHERE email = :email"), email=email.lower())
        assert user_id, email
        token, _ = tokens.issue(conn, user_id, "verify_email", minutes=60)
    return token


def error_code(resp: TestResponse) -> str:
    body = resp.get_json()
    assert isinstance(body, dict) and "error" in body, resp.get_data(as_text=True)
    return str(body["error"]["code"])
