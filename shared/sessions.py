"""Session tokens: opaque, 256 random bits, only a SHA-256 hash stored; checked with one statement."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from shared import error_codes as codes
from shared.config import Settings
from shared.db import Conn, Query
from shared.errors import Forbidden, RateLimited, Unauthorized

STAFF_ROLES = frozenset({"support", "finance", "compliance", "admin"})
ROLES = frozenset({"user"}) | STAFF_ROLES


@dataclass(frozen=True)
class Principal:
    """Who is calling: the signed-in user behind a valid session."""

    user_id: str
    role: str
    session_id: int
    # users.profile_version (migration 0070 bumps it on every change): the profile cache's validator
    profile_version: int = 0
    mfa: bool = False  # the session's holder proved the second factor (staff: at login or enrolment)
    stepped_up: bool = False  # ... within the last MFA_STEP_UP_MINUTES (money moves need it)
    risk_state: str = "ok"  # docs/fraud.md: a suspended account may sign in but not earn

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES


def new_token() -> str:
    """A fresh session token (43 URL-safe characters, 256 bits of entropy)."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


# The session check, the idle-timeout touch (at most once a minute, to keep writes down) and the
# per-user rate limit as CTEs (s, touched, rl) and the principal's columns: one statement, one round
# trip. A route may put its own work after them in the same statement (the heartbeat does:
# functions/progress/queries.py), so a request costs a single round trip in all. The rate limit is
# a fixed one-minute window per user in rate_limits (UNLOGGED: no WAL, nothing to replicate); the
# heartbeat counts in its own active_streams row instead (SESSION_CHECK_CTES without rl, and an rl
# of its own), which it writes anyway.
SESSION_CHECK_CTES = """
    s AS (
        SELECT s.id, s.user_id, s.last_seen_at, u.role, u.status, u.profile_version, u.risk_state, s.mfa_at, s.step_up_at
          FROM sessions s
          JOIN users u ON u.id = s.user_id
         WHERE s.token_hash = :token_hash
           AND s.revoked_at IS NULL
           AND s.expires_at > now()
           AND s.last_seen_at + s.idle_timeout > now()
    ), touched AS (
        UPDATE sessions SET last_seen_at = now()
          FROM s
         WHERE sessions.id = s.id AND s.last_seen_at < now() - interval '60 seconds'
        RETURNING 1
    )"""
SESSION_CTES = (
    SESSION_CHECK_CTES
    + """, rl AS (
        INSERT INTO rate_limits AS r (bucket, window_start, hits)
        SELECT 'user:' || s.user_id::text, date_trunc('minute', now()), 1 FROM s
        ON CONFLICT (bucket) DO UPDATE
           SET hits = CASE WHEN r.window_start = EXCLUDED.window_start THEN r.hits + 1 ELSE 1 END,
               window_start = EXCLUDED.window_start
        RETURNING hits, window_start
    )"""
)
PRINCIPAL_COLUMNS = """s.id AS session_id, s.user_id::text AS user_id, s.role, s.status AS account_status, s.profile_version,
           s.risk_state, rl.hits, ceil(extract(epoch FROM rl.window_start + interval '1 minute' - now()))::int AS retry_after,
           s.mfa_at IS NOT NULL AS mfa, extract(epoch FROM now() - s.step_up_at)::float8 AS step_up_age_s"""

AUTHENTICATE = Query("session_authenticate", f"WITH {SESSION_CTES} SELECT {PRINCIPAL_COLUMNS} FROM s LEFT JOIN rl ON true")


def authenticate(conn: Conn, token: str, settings: Settings) -> Principal:
    """The principal for a bearer token, after the per-user rate limit; raises 401/403/429."""
    if not token or len(token) > 256:
        raise Unauthorized("a valid session token is required", code=codes.INVALID_SESSION)
    return principal_from_row(conn.one(AUTHENTICATE, token_hash=hash_token(token)), settings)


def check_token(token: str) -> None:
    """401 for a token no session can have (before any database work)."""
    if not token or len(token) > 256:
        raise Unauthorized("a valid session token is required", code=codes.INVALID_SESSION)


def principal_from_row(row: dict[str, Any] | None, settings: Settings) -> Principal:
    """The principal from PRINCIPAL_COLUMNS of a statement with SESSION_CTES; raises 401/403/429."""
    if row is None or row["session_id"] is None:
        raise Unauthorized("the session is missing, expired or revoked; log in again", code=codes.INVALID_SESSION)
    if row["account_status"] != "active":
        raise Forbidden("this account is not active", code=codes.ACCOUNT_INACTIVE)
    if row["hits"] is not None and row["hits"] > settings.user_requests_per_minute:
        raise RateLimited("too many requests; slow down", retry_after=max(1, int(row["retry_after"] or 1)))
    age = row.get("step_up_age_s")
    return Principal(
        user_id=row["user_id"],
        role=row["role"],
        session_id=row["session_id"],
        profile_version=int(row["profile_version"]),
        risk_state=row["risk_state"],
        mfa=bool(row.get("mfa")),
        stepped_up=age is not None and float(age) < settings.mfa_step_up_minutes * 60,
    )
