"""The auth workflows: argon2 (tens of milliseconds of CPU) between database steps.

A password is hashed or verified outside any transaction, so no lock waits on it, and a few counts
must stand although the request then fails (the login throttle, a wrong password, a wrong second-
factor code). Each step is a ``Conn``-taking function of ``service`` or ``mfa``; this module only
opens the transactions, with the pool's helpers (docs/architecture.md, "Transactions").
"""

from __future__ import annotations

from typing import Any

from functions.auth import mfa, passwords, service
from functions.auth.service import ClientInfo
from shared import error_codes as codes
from shared.config import Settings
from shared.db import Database
from shared.errors import Forbidden, Unauthorized
from shared.logs import get_logger
from shared.sessions import STAFF_ROLES

log = get_logger(__name__)


def signup(db: Database, body: Any, client: ClientInfo, settings: Settings) -> dict[str, Any]:
    """The throttle, the hash (on both paths: ``service.signup``), then the account in one transaction."""
    with db.connection() as conn:
        service.throttle_signup(conn, client, settings)
    password_hash = passwords.hash_password(body.password)
    with db.transaction() as conn:
        return service.signup(conn, body, client, password_hash)


def request_email_change(db: Database, user_id: str, new_email: str, password: str) -> dict[str, Any]:
    """Re-authentication, then the confirmation link to the new address."""
    with db.connection() as conn:
        service.verify_password(conn, user_id, password)
    with db.transaction() as conn:
        return service.request_email_change(conn, user_id, new_email)


def reset_password(db: Database, token: str, new_password: str) -> None:
    new_hash = passwords.hash_password(new_password)
    with db.transaction() as conn:
        service.reset_password(conn, token, new_hash)


def change_password(db: Database, user_id: str, session_id: int, current: str, new: str) -> None:
    """Replaces the password and revokes every other session of the user."""
    service.check_new_password(current, new)
    with db.connection() as conn:
        service.verify_password(conn, user_id, current)
    new_hash = passwords.hash_password(new)
    with db.transaction() as conn:
        service.change_password(conn, user_id, session_id, new_hash)


def check_mfa(db: Database, user_id: str, code: str, settings: Settings, *, require_confirmed: bool = True) -> None:
    """Accepts one second-factor code or raises (401 ``invalid_mfa_code``, 409, 429 ``mfa_locked``);
    a wrong code is counted in its own transaction, so the count stands although the caller fails."""
    with db.transaction() as conn:
        accepted = mfa.check(conn, user_id, code, require_confirmed=require_confirmed)
    if not accepted:
        with db.transaction() as conn:
            mfa.record_failure(conn, user_id, settings)
        raise mfa.MfaFailed("the code is wrong, expired or was already used", code=codes.INVALID_MFA_CODE)


def confirm_mfa(db: Database, user_id: str, session_id: int | None, code: str, settings: Settings) -> list[str]:
    """Turns the pending secret on with its first code; returns the 10 recovery codes (shown once)."""
    mfa.check_format(code)
    with db.connection() as conn:
        mfa.pending_enrolment(conn, user_id)
    check_mfa(db, user_id, code, settings, require_confirmed=False)
    with db.transaction() as conn:
        return mfa.confirm(conn, user_id, session_id)


def step_up(db: Database, user_id: str, session_id: int, code: str, settings: Settings) -> None:
    """Records a fresh second-factor code on the session (money moves for MFA_STEP_UP_MINUTES)."""
    check_mfa(db, user_id, code, settings)
    with db.transaction() as conn:
        mfa.step_up(conn, user_id, session_id)


def login(db: Database, email: str, password: str, client: ClientInfo, settings: Settings, mfa_code: str | None = None) -> dict[str, Any]:
    """Checks the password under the per-IP throttle and the soft lock, then (staff with two-factor on)
    the code; returns a new session."""
    email = email.strip().lower()
    with db.connection() as conn:
        user = service.login_guard(conn, email, client, settings)
    ok = passwords.verify(user["password_hash"] if user else None, password)
    if not ok or user is None:
        with db.connection() as conn:
            service.record_failed_login(conn, email, user, client)
        log.info("failed login", extra={"event": "login_failed", "user_id": user["id"] if user else None, "ip": client.ip})
        raise Unauthorized("the email or password is wrong", code=codes.INVALID_CREDENTIALS)
    if user["status"] != "active":
        raise Forbidden("this account is not active", code=codes.ACCOUNT_INACTIVE)
    mfa_state = "not_required"
    if user["role"] in STAFF_ROLES:
        with db.connection() as conn:
            has_mfa = mfa.enrolled(conn, user["id"])
        mfa_state = "enrolment_required"
        if has_mfa:
            if not mfa_code:
                raise Unauthorized("enter the code from your authenticator app (mfa_code)", code=codes.MFA_CODE_REQUIRED)
            try:
                check_mfa(db, user["id"], mfa_code, settings)
            except mfa.MfaFailed:
                with db.connection() as conn:  # a wrong code counts toward the login lock too
                    service.record_failed_login(conn, email, user, client)
                raise
            mfa_state = "verified"
    new_hash = passwords.hash_password(password) if passwords.needs_rehash(user["password_hash"]) else None
    with db.transaction() as conn:
        return service.complete_login(conn, email, user, client, settings, new_hash=new_hash, mfa_state=mfa_state)
