"""Accounts and sessions: sign-up, login (with its protections), logout, password change."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from functions.auth import passwords
from functions.auth import queries as q
from functions.risk import signals
from shared import outbox, ratelimit
from shared.cache import VersionedCache
from shared.config import Settings
from shared.db import Conn, Database
from shared.errors import Conflict, Forbidden, NotFound, RateLimited, Unauthorized, ValidationFailed
from shared.logs import get_logger
from shared.models import rfc3339
from shared.sessions import ROLES, STAFF_ROLES, hash_token, new_token

log = get_logger(__name__)
REFERRAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


@dataclass(frozen=True)
class ClientInfo:
    ip: str
    user_agent: str
    install_id: str | None = None  # the X-Install-Id header (docs/fraud.md), hashed before it is stored


def new_referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(8))


def _create_session(conn: Conn, user: dict[str, Any], client: ClientInfo, settings: Settings) -> dict[str, Any]:
    staff = user["role"] in STAFF_ROLES
    token = new_token()
    row = conn.one(
        q.INSERT_SESSION,
        user_id=user["id"],
        token_hash=hash_token(token),
        idle_minutes=settings.staff_session_idle_minutes if staff else settings.session_idle_minutes,
        absolute_hours=settings.staff_session_absolute_hours if staff else settings.session_absolute_hours,
        ip=client.ip,
        user_agent=client.user_agent,
    )
    assert row is not None
    return {"token": token, "token_type": "Bearer", "expires_at": row["expires_at"]}


def create_user(
    conn: Conn,
    *,
    email: str,
    password: str,
    display_name: str,
    referral_code: str | None = None,
    role: str = "user",
) -> dict[str, Any]:
    """Inserts an account (inside the caller's transaction); 409 when the email is taken."""
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}", code="unknown_role")
    referred_by = None
    if referral_code:
        ref = conn.one(q.USER_ID_BY_REFERRAL_CODE, code=referral_code.upper())
        if ref is None or ref["status"] != "active":
            raise ValidationFailed("that referral code does not exist", code="unknown_referral_code")
        referred_by = ref["id"]
    password_hash = passwords.hash_password(password)
    for _ in range(5):
        user = conn.one(
            q.INSERT_USER,
            email=email,
            password_hash=password_hash,
            display_name=display_name,
            referral_code=new_referral_code(),
            referred_by=referred_by,
            role=role,
        )
        if user is not None:
            # In the sign-up transaction: the event exists exactly when the account does. No PII in it.
            outbox.emit(
                conn,
                "user_signed_up",
                {
                    "user_id": user["id"],
                    "referred_by": user["referred_by"],
                    "role": user["role"],
                    "created_at": rfc3339(user["created_at"]),
                },
                key=f"user_signed_up:{user['id']}",
            )
            return user
        if conn.one(q.USER_FOR_LOGIN, email=email) is not None or conn.one(q.USER_BY_CANONICAL_EMAIL, email=email) is not None:
            # the same mailbox under another spelling (dots, +tags) is the same account (docs/fraud.md)
            raise Conflict("an account with this email already exists", code="email_taken")
    raise RuntimeError("could not allocate a unique referral code")


def signup(db: Database, body: Any, client: ClientInfo, settings: Settings) -> dict[str, Any]:
    """Creates an account and signs it in."""
    with db.connection() as conn:
        ratelimit.hit(
            conn, f"signup-ip:{client.ip}", limit=settings.ip_signup_per_hour, window_s=3600, message="too many sign-ups from this address"
        )
    # Hash outside the transaction: argon2 takes tens of milliseconds and holds no locks.
    with db.transaction() as conn:
        user = create_user(conn, email=body.email, password=body.password, display_name=body.display_name, referral_code=body.referral_code)
        session = _create_session(conn, user, client, settings)
        signals.observe(conn, user["id"], "signup", client.ip, client.install_id)
        if user["referred_by"] is not None:
            signals.observe(conn, user["id"], "referral", client.ip, client.install_id)
    log.info("user signed up", extra={"event": "user_signed_up", "user_id": user["id"]})
    return {"user": user, "session": session}


def login(db: Database, email: str, password: str, client: ClientInfo, settings: Settings) -> dict[str, Any]:
    """Checks the password under the per-IP throttle and the soft lock; returns a new session."""
    email = email.strip().lower()
    with db.connection() as conn:
        ratelimit.hit(
            conn,
            f"login-ip:{client.ip}",
            limit=settings.ip_login_per_minute,
            window_s=60,
            message="too many login attempts from this address",
        )
        guard = conn.one(q.LOGIN_GUARD, email=email, ip=client.ip, window_minutes=settings.login_failure_window_minutes)
        assert guard is not None
        if guard["recent_failures"] >= settings.login_max_failures and not guard["known_ip"]:
            import datetime as dt

            unlock = guard["last_failure_at"] + dt.timedelta(minutes=settings.login_lock_minutes)
            wait = int((unlock - dt.datetime.now(dt.UTC)).total_seconds())
            if wait > 0:
                raise RateLimited(
                    "too many failed attempts for this account; try again later or from a device you used before",
                    retry_after=wait,
                    code="login_temporarily_locked",
                )
        user = conn.one(q.USER_FOR_LOGIN, email=email)
    ok = passwords.verify(user["password_hash"] if user else None, password)
    if not ok or user is None:
        with db.connection() as conn:
            conn.execute(q.RECORD_LOGIN_ATTEMPT, email=email[:320], user_id=user["id"] if user else None, ip=client.ip, succeeded=False)
        log.info("failed login", extra={"event": "login_failed", "user_id": user["id"] if user else None, "ip": client.ip})
        raise Unauthorized("the email or password is wrong", code="invalid_credentials")
    if user["status"] != "active":
        raise Forbidden("this account is not active", code="account_inactive")
    new_hash = passwords.hash_password(password) if passwords.needs_rehash(user["password_hash"]) else None
    with db.transaction() as conn:
        conn.execute(q.RECORD_LOGIN_ATTEMPT, email=email, user_id=user["id"], ip=client.ip, succeeded=True)
        if new_hash:
            conn.execute(q.UPDATE_PASSWORD_HASH, id=user["id"], password_hash=new_hash, changed=False)
        session = _create_session(conn, user, client, settings)
        signals.observe(conn, user["id"], "login", client.ip, client.install_id)
    user.pop("password_hash", None)
    # A bare login earns nothing: the daily and streak bonuses accrue with the first verified watching
    # of the day (functions/earnings/bonuses.on_verified_watch). "bonus" stays in the answer, always null.
    return {"user": user, "session": session, "bonus": None}


def logout(db: Database, session_id: int) -> None:
    with db.connection() as conn:
        conn.execute(q.REVOKE_SESSION, id=session_id, reason="logout")


# The product document's 10-minute profile cache, per instance. An entry is used only while the
# user's profile_version (read by the session check, at no extra cost) is the one it was built from,
# so a change through any instance is seen at once everywhere.
PROFILE_TTL_S = 10 * 60
profiles: VersionedCache[dict[str, Any]] = VersionedCache(PROFILE_TTL_S, max_entries=50_000)


def me(db: Database, user_id: str, profile_version: int = 0) -> dict[str, Any]:
    if profile_version:
        cached = profiles.get(user_id, profile_version)
        if cached is not None:
            return cached
    with db.connection() as conn:
        user = conn.one(q.USER_PROFILE_BY_ID, id=user_id)
    if user is None:
        raise NotFound("no such user")
    version = user.pop("profile_version")
    if profile_version and version == profile_version:
        profiles.put(user_id, version, user)
    return user


def verify_password(conn: Conn, user_id: str, password: str) -> None:
    """Re-authentication for sensitive actions: 401 unless ``password`` is the user's."""
    stored = conn.value(q.PASSWORD_HASH_BY_ID, id=user_id)
    if not passwords.verify(stored, password):
        raise Unauthorized("the password is wrong", code="reauthentication_failed")


def change_password(db: Database, user_id: str, session_id: int, current: str, new: str) -> None:
    """Replaces the password and revokes every other session of the user."""
    if current == new:
        raise ValidationFailed("the new password must differ from the current one", code="password_unchanged")
    with db.connection() as conn:
        verify_password(conn, user_id, current)
    new_hash = passwords.hash_password(new)
    with db.transaction() as conn:
        conn.execute(q.UPDATE_PASSWORD_HASH, id=user_id, password_hash=new_hash, changed=True)
        conn.execute(q.REVOKE_USER_SESSIONS, user_id=user_id, reason="password_changed", keep_id=session_id)


def create_admin(db: Database, email: str, password: str, display_name: str) -> dict[str, Any]:
    """Creates the first staff account (role admin) from the command line."""
    from functions.auth.models import normalise_email

    with db.transaction() as conn:
        return create_user(conn, email=normalise_email(email), password=password, display_name=display_name, role="admin")
