"""Two-factor authentication for staff: TOTP (RFC 6238, pyotp), recovery codes, step-up.

* Enrolment: ``begin`` makes a secret (160 bits, base32) and answers it as an ``otpauth://`` URI and
  a QR code (SVG); ``confirm`` takes the first code from the authenticator app, turns the secret
  on, hands out 10 single-use recovery codes (stored as SHA-256) exactly once, and marks the
  current session as having passed the second factor (and stepped up).
* A code is a 6-digit TOTP (this, the previous or the next 30 s step, for clock drift), accepted
  once: the step of the last accepted code is stored, and an equal or older step is refused. A
  recovery code (``xxxxx-xxxxx``) works once. Wrong codes count: ``MFA_MAX_FAILURES`` of them lock
  the second factor for ``LOGIN_LOCK_MINUTES`` (and at login they also count toward the login lock).
* Step-up: money moves (routes marked ``step_up``) need a code entered in the last
  ``MFA_STEP_UP_MINUTES`` on the session (``step_up``), recorded on the session row.
* An admin can reset another staff member's second factor (audited, sessions revoked); nobody
  their own.
"""

from __future__ import annotations

import hashlib
import io
import re
import secrets
import time
from typing import Any

import pyotp
import segno

from shared import error_codes as codes
from shared.config import Settings
from shared.db import Conn, Query
from shared.errors import Conflict, RateLimited, Unauthorized, ValidationFailed

ISSUER = "EarnPay"
RECOVERY_CODES = 10
_RECOVERY = re.compile(r"^[a-z2-7]{5}-?[a-z2-7]{5}$")
_TOTP = re.compile(r"^[0-9]{6}$")

GET = Query(
    "mfa_get",
    """SELECT m.secret, m.confirmed_at, m.last_step, m.failures, m.locked_until, m.locked_until > now() AS locked,
              ceil(extract(epoch FROM m.locked_until - now()))::int AS locked_for, u.email
         FROM users u LEFT JOIN user_mfa m ON m.user_id = u.id
        WHERE u.id = CAST(:user_id AS uuid)""",
)
LOCK = Query(
    "mfa_lock",
    """SELECT secret, confirmed_at, last_step, failures, coalesce(locked_until > now(), false) AS locked,
              ceil(extract(epoch FROM locked_until - now()))::int AS locked_for
         FROM user_mfa WHERE user_id = CAST(:user_id AS uuid) FOR UPDATE""",
)
UPSERT_PENDING = Query(
    "mfa_upsert_pending",
    """INSERT INTO user_mfa (user_id, secret) VALUES (CAST(:user_id AS uuid), :secret)
       ON CONFLICT (user_id) DO UPDATE SET secret = EXCLUDED.secret, created_at = now(), last_step = 0, failures = 0
        WHERE user_mfa.confirmed_at IS NULL
       RETURNING secret""",
)
CONFIRM = Query(
    "mfa_confirm",
    "UPDATE user_mfa SET confirmed_at = now(), failures = 0 WHERE user_id = CAST(:user_id AS uuid)",
)
ACCEPTED = Query(
    "mfa_accepted",
    "UPDATE user_mfa SET last_step = greatest(last_step, :step), failures = 0, locked_until = NULL WHERE user_id = CAST(:user_id AS uuid)",
)
FAILED = Query(
    "mfa_failed",
    """UPDATE user_mfa
          SET failures = CASE WHEN failures + 1 >= :max THEN 0 ELSE failures + 1 END,
              locked_until = CASE WHEN failures + 1 >= :max THEN now() + make_interval(mins => :lock_minutes) ELSE locked_until END
        WHERE user_id = CAST(:user_id AS uuid)""",
)
DELETE_CODES = Query("mfa_delete_codes", "DELETE FROM mfa_recovery_codes WHERE user_id = CAST(:user_id AS uuid)")
INSERT_CODES = Query(
    "mfa_insert_codes",
    """INSERT INTO mfa_recovery_codes (user_id, code_hash)
       SELECT CAST(:user_id AS uuid), h FROM unnest(CAST(:hashes AS bytea[])) AS h""",
)
USE_CODE = Query(
    "mfa_use_recovery_code",
    """UPDATE mfa_recovery_codes SET used_at = now()
        WHERE user_id = CAST(:user_id AS uuid) AND code_hash = :code_hash AND used_at IS NULL
       RETURNING id""",
)
DELETE_MFA = Query("mfa_delete", "DELETE FROM user_mfa WHERE user_id = CAST(:user_id AS uuid)")
SESSION_PASSED = Query(
    "mfa_session_passed",
    "UPDATE sessions SET mfa_at = coalesce(mfa_at, now()), step_up_at = now() WHERE id = :session_id AND user_id = CAST(:user_id AS uuid)",
)


class MfaFailed(Unauthorized):
    code = codes.INVALID_MFA_CODE


def _hash(code: str) -> bytes:
    return hashlib.sha256(code.replace("-", "").lower().encode()).digest()


def new_recovery_codes() -> list[str]:
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    recovery = []
    for _ in range(RECOVERY_CODES):
        raw = "".join(secrets.choice(alphabet) for _ in range(10))
        recovery.append(f"{raw[:5]}-{raw[5:]}")
    return recovery


def provisioning(secret: str, email: str) -> dict[str, str]:
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=ISSUER)
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=4)
    return {"secret": secret, "otpauth_uri": uri, "qr_svg": buffer.getvalue().decode()}


def enrolled(conn: Conn, user_id: str) -> bool:
    row = conn.one(GET, user_id=user_id)
    return bool(row and row["confirmed_at"] is not None)


def begin(conn: Conn, user_id: str) -> dict[str, str]:
    """Starts (or restarts) enrolment; 409 when the second factor is already on."""
    row = conn.one(GET, user_id=user_id)
    assert row is not None
    if row["confirmed_at"] is not None:
        raise Conflict("two-factor authentication is already on for this account", code=codes.MFA_ALREADY_ENROLLED)
    secret = conn.value(UPSERT_PENDING, user_id=user_id, secret=pyotp.random_base32(32))
    return provisioning(secret, row["email"])


def _totp_step(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """The time step ``code`` belongs to (now, one before or one after), if it is newer than ``last_step``."""
    totp = pyotp.TOTP(secret)
    current = int((now or time.time()) // totp.interval)
    for step in (current, current - 1, current + 1):
        if step > last_step and secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def record_failure(conn: Conn, user_id: str, settings: Settings) -> None:
    """Counts a wrong code (``MFA_MAX_FAILURES`` of them lock the second factor for ``LOGIN_LOCK_MINUTES``)."""
    conn.execute(FAILED, user_id=user_id, max=settings.mfa_max_failures, lock_minutes=settings.login_lock_minutes)


def check(conn: Conn, user_id: str, code: str, *, require_confirmed: bool = True) -> bool:
    """Accepts one TOTP or recovery code of ``user_id`` (True), or says it is wrong (False); raises 409
    ``mfa_not_enrolled`` and 429 ``mfa_locked``.

    ``flows.check_mfa`` runs it: a wrong code is counted in its own transaction (``record_failure``),
    so the count stands although the caller fails with ``MfaFailed``."""
    code = (code or "").strip().replace(" ", "")
    row = conn.one(LOCK, user_id=user_id)
    if row is None or (require_confirmed and row["confirmed_at"] is None):
        raise Conflict("two-factor authentication is not set up for this account", code=codes.MFA_NOT_ENROLLED)
    if row["locked"]:
        raise RateLimited("too many wrong codes; try again later", retry_after=max(1, int(row["locked_for"] or 1)), code=codes.MFA_LOCKED)
    if _TOTP.match(code):
        step = _totp_step(row["secret"], code, int(row["last_step"]))
        if step is not None:
            conn.execute(ACCEPTED, user_id=user_id, step=step)
            return True
    elif (
        _RECOVERY.match(code.lower())
        and row["confirmed_at"] is not None
        and conn.value(USE_CODE, user_id=user_id, code_hash=_hash(code)) is not None
    ):
        conn.execute(ACCEPTED, user_id=user_id, step=0)
        return True
    return False


def check_format(code: str) -> None:
    """422 unless ``code`` is a 6-digit code (the first code of an enrolment: checked before anything else)."""
    if not _TOTP.match((code or "").strip()):
        raise ValidationFailed("enter the 6-digit code your authenticator app shows", code=codes.INVALID_MFA_CODE_FORMAT)


def pending_enrolment(conn: Conn, user_id: str) -> None:
    """Checks that there is an enrolment to confirm: 409 when it is on already or was never started."""
    row = conn.one(GET, user_id=user_id)
    assert row is not None
    if row["confirmed_at"] is not None:
        raise Conflict("two-factor authentication is already on for this account", code=codes.MFA_ALREADY_ENROLLED)
    if row["secret"] is None:
        raise Conflict("start the enrolment first (POST /auth/mfa/enrol)", code=codes.MFA_NOT_STARTED)


def confirm(conn: Conn, user_id: str, session_id: int | None) -> list[str]:
    """Turns the pending secret on (its first code passed: ``flows.confirm_mfa``); returns the 10
    recovery codes (shown once) and marks the session as having passed the second factor."""
    recovery = new_recovery_codes()
    conn.execute(CONFIRM, user_id=user_id)
    conn.execute(DELETE_CODES, user_id=user_id)
    conn.execute(INSERT_CODES, user_id=user_id, hashes=[_hash(c) for c in recovery])
    if session_id is not None:
        conn.execute(SESSION_PASSED, session_id=session_id, user_id=user_id)
    return recovery


def enrol_now(conn: Conn, user_id: str) -> dict[str, Any]:
    """Enrols at once, without a first code (``create-admin``: the operator is at the console); returns
    the secret, URI, QR code and recovery codes."""
    secret = pyotp.random_base32(32)
    conn.execute(DELETE_MFA, user_id=user_id)
    conn.execute(UPSERT_PENDING, user_id=user_id, secret=secret)
    conn.execute(CONFIRM, user_id=user_id)
    recovery = new_recovery_codes()
    conn.execute(DELETE_CODES, user_id=user_id)
    conn.execute(INSERT_CODES, user_id=user_id, hashes=[_hash(c) for c in recovery])
    row = conn.one(GET, user_id=user_id)
    assert row is not None
    return {**provisioning(secret, row["email"]), "recovery_codes": recovery}


def step_up(conn: Conn, user_id: str, session_id: int) -> None:
    """Records a fresh second-factor code (checked by ``flows.step_up``) on the session: money moves
    for MFA_STEP_UP_MINUTES."""
    conn.execute(SESSION_PASSED, session_id=session_id, user_id=user_id)


def remove(conn: Conn, user_id: str) -> bool:
    """Turns the second factor off (an admin's reset); True when there was one."""
    conn.execute(DELETE_CODES, user_id=user_id)
    return conn.execute(DELETE_MFA, user_id=user_id) > 0
