"""Single-use account tokens sent by email (verify an address, prove a new one, reset a password).

A token is 256 random bits (43 URL-safe characters): unguessable, so nothing is gained by also
signing it, and single use needs a stored state anyway. Only its SHA-256 is stored, with its
purpose and expiry (migration 0080). ``consume`` finds a token by hash AND purpose and spends it
in the caller's transaction: an unknown, forged, expired, already used or cross-purpose token is
the same clear 400 and changes nothing.

The raw token never reaches the database or the outbox: ``send_notifications`` issues it when it
renders the email (functions/notifications), so the only copy is in the message sent.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from shared import error_codes as codes
from shared.db import Conn, Query
from shared.errors import BadRequest
from shared.sessions import hash_token, new_token

PURPOSES = ("verify_email", "change_email", "reset_password")

# A newer reset or email-change token supersedes the older ones (only the latest link works). Sign-up
# verification links all stay valid until one is used (which spends the others: ``consume``) or they expire.
SUPERSEDE = Query(
    "account_tokens_supersede",
    """UPDATE account_tokens SET used_at = now()
        WHERE user_id = CAST(:user_id AS uuid) AND purpose = :purpose AND used_at IS NULL""",
)

INSERT = Query(
    "account_tokens_insert",
    """INSERT INTO account_tokens (user_id, purpose, token_hash, new_email, expires_at)
       VALUES (CAST(:user_id AS uuid), :purpose, :token_hash, :new_email, now() + make_interval(mins => :minutes))
       RETURNING expires_at""",
)

# Spends a live token of the purpose; returns nothing for every other case (same answer for all).
SPEND = Query(
    "account_tokens_spend",
    """UPDATE account_tokens t SET used_at = now()
         FROM users u
        WHERE t.token_hash = :token_hash AND t.purpose = :purpose AND t.used_at IS NULL AND t.expires_at > now()
          AND u.id = t.user_id AND u.status = 'active'
       RETURNING t.id, t.user_id::text AS user_id, t.new_email, u.email""",
)


class InvalidToken(BadRequest):
    code = codes.INVALID_TOKEN


def issue(conn: Conn, user_id: str, purpose: str, *, minutes: int, new_email: str | None = None) -> tuple[str, dt.datetime]:
    """A new token for ``purpose`` (older live ones of the purpose stop working); returns (token, expires_at)."""
    if purpose not in PURPOSES:
        raise ValueError(purpose)
    token = new_token()
    if purpose != "verify_email":
        conn.execute(SUPERSEDE, user_id=user_id, purpose=purpose)
    expires = conn.value(INSERT, user_id=user_id, purpose=purpose, token_hash=hash_token(token), new_email=new_email, minutes=int(minutes))
    return token, expires


def consume(conn: Conn, token: str, purpose: str) -> dict[str, Any]:
    """Spends ``token`` for ``purpose`` in the caller's transaction; 400 ``invalid_token`` otherwise."""
    row = conn.one(SPEND, token_hash=hash_token(token), purpose=purpose) if 20 <= len(token) <= 128 else None
    if row is None:
        raise InvalidToken("this link is invalid, expired or already used; ask for a new one", code=codes.INVALID_TOKEN)
    conn.execute(SUPERSEDE, user_id=row["user_id"], purpose=purpose)  # the other links of the purpose are spent too
    return row
