"""Accounts and sessions: sign-up, email verification, login (with its protections and the staff second
factor), logout, password change and reset, email change.

No answer tells whether an address has an account: sign-up, the reset request and the verification
resend answer the same for both, after the same work (an argon2 hash at sign-up on both paths),
and tell the address's owner by email instead (issue 11).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from functions.auth import mfa, passwords, tokens
from functions.auth import queries as q
from functions.earnings import bonuses
from functions.notifications.service import notify
from functions.risk import signals
from shared import error_codes as codes
from shared import outbox, ratelimit
from shared.cache import VersionedCache
from shared.config import Settings
from shared.db import Conn
from shared.errors import Conflict, NotFound, RateLimited, Unauthorized, ValidationFailed
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


def device_hash(user_id: str, client: ClientInfo) -> bytes:
    """A device: the client's network (/24 for IPv4, /64 for IPv6: addresses change within one) and user agent."""
    net = signals.network_prefix(client.ip) or client.ip
    return hashlib.sha256(f"{user_id}|{net}|{client.user_agent}".encode()).digest()


def _remember_device(conn: Conn, user: dict[str, Any], client: ClientInfo) -> None:
    """Notifies a sign-in from a device not seen before (not the account's very first one)."""
    row = conn.one(q.REMEMBER_DEVICE, user_id=user["id"], device_hash=device_hash(user["id"], client))
    if row and row["new_device"] and row["had_devices"]:
        notify(conn, user["id"], "new_device", {"ip": client.ip, "user_agent": client.user_agent[:120]})


def _create_session(
    conn: Conn, user: dict[str, Any], client: ClientInfo, settings: Settings, *, mfa_passed: bool = False
) -> dict[str, Any]:
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
    if mfa_passed:
        conn.execute(q.SESSION_MFA_PASSED, id=row["id"])
    _remember_device(conn, user, client)
    return {"token": token, "token_type": "Bearer", "expires_at": row["expires_at"]}


def create_user(
    conn: Conn,
    *,
    email: str,
    password: str,
    display_name: str,
    referral_code: str | None = None,
    role: str = "user",
    password_hash: str | None = None,
) -> dict[str, Any]:
    """Inserts an account (inside the caller's transaction); 409 when the email is taken."""
    if role not in ROLES:
        raise ValidationFailed(f"unknown role {role!r}", code=codes.UNKNOWN_ROLE)
    referred_by = None
    if referral_code:
        ref = conn.one(q.USER_ID_BY_REFERRAL_CODE, code=referral_code.upper())
        if ref is None or ref["status"] != "active":
            raise ValidationFailed("that referral code does not exist", code=codes.UNKNOWN_REFERRAL_CODE)
        referred_by = ref["id"]
    password_hash = password_hash or passwords.hash_password(password)
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
            raise Conflict("an account with this email already exists", code=codes.EMAIL_TAKEN)
    raise RuntimeError("could not allocate a unique referral code")


def throttle_signup(conn: Conn, client: ClientInfo, settings: Settings) -> None:
    """The per-address sign-up throttle (429); counted on its own, before the password is hashed."""
    ratelimit.hit(
        conn, f"signup-ip:{client.ip}", limit=settings.ip_signup_per_hour, window_s=3600, message="too many sign-ups from this address"
    )


def signup(conn: Conn, body: Any, client: ClientInfo, password_hash: str) -> dict[str, Any]:
    """Creates an account and emails the link that verifies it; the same answer when the address is taken.

    A new account gets the verification email (its link signs it in); an address that already has an
    account gets a note saying someone tried to sign up with it (at most 3 a day). Both paths hash
    the password (``flows.signup``, before this transaction) and write one notification, so neither
    the answer nor its timing tells them apart."""
    existing = conn.one(q.USER_FOR_LOGIN, email=body.email)
    if existing is None:
        try:
            user = create_user(
                conn,
                email=body.email,
                password=body.password,
                display_name=body.display_name,
                referral_code=body.referral_code,
                password_hash=password_hash,
            )
        except Conflict:  # taken meanwhile (a concurrent sign-up), or the same mailbox spelt another way
            existing = conn.one(q.USER_FOR_LOGIN, email=body.email)
            if existing is None:  # one mailbox is one account (docs/fraud.md): its owner is told
                owner = conn.one(q.USER_BY_CANONICAL_EMAIL, email=body.email)
                existing = conn.one(q.USER_BY_ID, id=owner["id"]) if owner else None
        else:
            notify(conn, user["id"], "verify_email")
            signals.observe(conn, user["id"], "signup", client.ip, client.install_id)
            if user["referred_by"] is not None:
                signals.observe(conn, user["id"], "referral", client.ip, client.install_id)
            log.info("user signed up", extra={"event": "user_signed_up", "user_id": user["id"]})
    if existing is not None:
        if body.referral_code and conn.one(q.USER_ID_BY_REFERRAL_CODE, code=body.referral_code.upper()) is None:
            raise ValidationFailed("that referral code does not exist", code=codes.UNKNOWN_REFERRAL_CODE)
        if existing["status"] == "active" and _quietly_allowed(conn, f"signup-attempt:{existing['id']}", limit=3, window_s=86400):
            notify(conn, existing["id"], "signup_attempt")
    return ACCEPTED_SIGNUP


ACCEPTED_SIGNUP = {
    "status": "accepted",
    "message": "check your inbox: we sent a link to confirm the address (it signs you in)",
}
ACCEPTED_RESET = {
    "status": "accepted",
    "message": "if an account uses this address, we sent it a link to choose a new password (valid 30 minutes)",
}


def _quietly_allowed(conn: Conn, bucket: str, *, limit: int, window_s: int) -> bool:
    """A throttle whose refusal must not show (it would tell that the account exists): False past ``limit``."""
    try:
        ratelimit.hit(conn, bucket, limit=limit, window_s=window_s)
    except RateLimited:
        return False
    return True


def verify_email(conn: Conn, token: str, client: ClientInfo, settings: Settings) -> dict[str, Any]:
    """Spends a sign-up verification token: marks the address verified and signs the account in."""
    spent = tokens.consume(conn, token, "verify_email")
    user = conn.one(q.MARK_EMAIL_VERIFIED, id=spent["user_id"])
    assert user is not None
    bonuses.try_qualify(conn, user["id"])  # a verified address may be what the user's referral waited for
    # the link signs in (staff sign in with their second factor)
    session = _create_session(conn, user, client, settings) if user["role"] not in STAFF_ROLES else None
    return {"user": user, "session": session}


def resend_verification(conn: Conn, user_id: str) -> dict[str, Any]:
    """Sends the verification link again: once a minute, five times a day."""
    user = conn.one(q.USER_BY_ID, id=user_id)
    if user is None:
        raise NotFound("no such user")
    if user["email_verified"]:
        raise Conflict("this address is already verified", code=codes.EMAIL_ALREADY_VERIFIED)
    ratelimit.hit(conn, f"verify-resend-min:{user_id}", limit=1, window_s=60, message="wait a minute before asking again")
    ratelimit.hit(conn, f"verify-resend-day:{user_id}", limit=5, window_s=86400, message="too many verification emails today")
    notify(conn, user_id, "verify_email")
    return {"status": "accepted", "message": "we sent a new link to your address"}


def request_email_change(conn: Conn, user_id: str, new_email: str) -> dict[str, Any]:
    """Sends a confirmation link to ``new_email`` (the password was checked before: ``flows``); the
    address changes only when it is used."""
    user = conn.one(q.USER_BY_ID, id=user_id)
    assert user is not None
    if user["email"] == new_email:
        raise ValidationFailed("that is already your address", code=codes.EMAIL_UNCHANGED)
    ratelimit.hit(conn, f"email-change:{user_id}", limit=5, window_s=3600, message="too many email changes; try again later")
    # A taken address gets nothing (and the answer is the same): confirming would fail anyway.
    if not conn.value(q.EMAIL_IN_USE, email=new_email):
        notify(conn, user_id, "change_email", {"new_email": new_email}, email_to=new_email)
    return {"status": "accepted", "message": "we sent a link to the new address; your address changes when it is used"}


def confirm_email_change(conn: Conn, token: str) -> dict[str, Any]:
    """Spends an email-change token: the new address takes effect, and the old one is told."""
    spent = tokens.consume(conn, token, "change_email")
    user = conn.one(q.CHANGE_EMAIL, id=spent["user_id"], email=spent["new_email"])
    if user is None:
        raise Conflict("another account uses this address now", code=codes.EMAIL_TAKEN)
    bonuses.try_qualify(conn, user["id"])
    notify(conn, user["id"], "email_changed", {"new_email": spent["new_email"]}, email_to=spent["email"])
    return {"user": user, "session": None}


def forgot_password(conn: Conn, email: str, client: ClientInfo) -> dict[str, Any]:
    """Emails a reset link when the address has an account; the same answer (and work) either way.

    Throttled per client address and per typed address (429, which tells nothing about the account),
    and per account (silently: at most 3 links an hour)."""
    ratelimit.hit(conn, f"reset-ip:{client.ip}", limit=20, window_s=3600, message="too many reset requests from this address")
    ratelimit.hit(conn, f"reset-email:{email}", limit=5, window_s=3600, message="too many reset requests for this email address")
    user = conn.one(q.USER_FOR_LOGIN, email=email)
    if user is not None and user["status"] == "active" and _quietly_allowed(conn, f"reset-user:{user['id']}", limit=3, window_s=3600):
        notify(conn, user["id"], "reset_password")
    return ACCEPTED_RESET


def reset_password(conn: Conn, token: str, new_hash: str) -> None:
    """Spends a reset token: the new password (hashed before the transaction: ``flows``), every session
    revoked, a notification sent."""
    spent = tokens.consume(conn, token, "reset_password")
    conn.execute(q.UPDATE_PASSWORD_HASH, id=spent["user_id"], password_hash=new_hash, changed=True)
    conn.execute(q.REVOKE_USER_SESSIONS, user_id=spent["user_id"], reason="password_reset", keep_id=None)
    conn.execute(q.MARK_EMAIL_VERIFIED, id=spent["user_id"])  # the link proved the address too
    bonuses.try_qualify(conn, spent["user_id"])
    notify(conn, spent["user_id"], "password_changed")
    log.info("password reset", extra={"event": "password_reset", "user_id": spent["user_id"]})


def login_guard(conn: Conn, email: str, client: ClientInfo, settings: Settings) -> dict[str, Any] | None:
    """Login's first step: the per-IP throttle and the account's soft lock (429), then the account (or None).

    Runs without a transaction (``db.connection()``): the throttle's count stands although the lock refuses."""
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
                code=codes.LOGIN_TEMPORARILY_LOCKED,
            )
    return conn.one(q.USER_FOR_LOGIN, email=email)


def record_failed_login(conn: Conn, email: str, user: dict[str, Any] | None, client: ClientInfo) -> None:
    """Counts a failed attempt (a wrong password, or a wrong second-factor code) toward the login lock."""
    conn.execute(q.RECORD_LOGIN_ATTEMPT, email=email[:320], user_id=user["id"] if user else None, ip=client.ip, succeeded=False)


def complete_login(
    conn: Conn, email: str, user: dict[str, Any], client: ClientInfo, settings: Settings, *, new_hash: str | None, mfa_state: str
) -> dict[str, Any]:
    """Login's last step, once the password (and code) passed: the attempt, a rehash, a new session."""
    conn.execute(q.RECORD_LOGIN_ATTEMPT, email=email, user_id=user["id"], ip=client.ip, succeeded=True)
    if new_hash:
        conn.execute(q.UPDATE_PASSWORD_HASH, id=user["id"], password_hash=new_hash, changed=False)
    session = _create_session(conn, user, client, settings, mfa_passed=mfa_state == "verified")
    signals.observe(conn, user["id"], "login", client.ip, client.install_id)
    user.pop("password_hash", None)
    # A bare login earns nothing: the daily and streak bonuses accrue with the first verified watching
    # of the day (functions/earnings/bonuses.on_verified_watch). "bonus" stays in the answer, always null.
    return {"user": user, "session": session, "bonus": None, "mfa": mfa_state}


def logout(conn: Conn, session_id: int) -> None:
    conn.execute(q.REVOKE_SESSION, id=session_id, reason="logout")


# The product document's 10-minute profile cache, per instance. An entry is used only while the
# user's profile_version (read by the session check, at no extra cost) is the one it was built from,
# so a change through any instance is seen at once everywhere.
PROFILE_TTL_S = 10 * 60
profiles: VersionedCache[dict[str, Any]] = VersionedCache(PROFILE_TTL_S, max_entries=50_000)


def cached_profile(user_id: str, profile_version: int = 0) -> dict[str, Any] | None:
    """The profile from this instance's cache while ``profile_version`` is the one it was built from."""
    return profiles.get(user_id, profile_version) if profile_version else None


def me(conn: Conn, user_id: str, profile_version: int = 0) -> dict[str, Any]:
    """The profile from the database (``cached_profile`` first saves the query), cached for next time."""
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
        raise Unauthorized("the password is wrong", code=codes.REAUTHENTICATION_FAILED)


def check_new_password(current: str, new: str) -> None:
    """422 when the new password is the current one (checked before anything else)."""
    if current == new:
        raise ValidationFailed("the new password must differ from the current one", code=codes.PASSWORD_UNCHANGED)


def change_password(conn: Conn, user_id: str, session_id: int, new_hash: str) -> None:
    """Replaces the password (checked and hashed before the transaction: ``flows``) and revokes every
    other session of the user."""
    conn.execute(q.UPDATE_PASSWORD_HASH, id=user_id, password_hash=new_hash, changed=True)
    conn.execute(q.REVOKE_USER_SESSIONS, user_id=user_id, reason="password_changed", keep_id=session_id)
    notify(conn, user_id, "password_changed")


def create_admin(conn: Conn, email: str, password: str, display_name: str) -> dict[str, Any]:
    """Creates the first staff account (role admin) from the command line, its email verified and its
    second factor enrolled, in the caller's transaction: the answer carries the TOTP secret and the
    recovery codes, shown once."""
    from functions.auth.models import normalise_email

    user = create_user(conn, email=normalise_email(email), password=password, display_name=display_name, role="admin")
    user = conn.one(q.MARK_EMAIL_VERIFIED, id=user["id"]) or user
    return {**user, "mfa": mfa.enrol_now(conn, user["id"])}
