"""Idempotency-Key for writes a client may retry: same key and body replays the first answer.

A key is claimed before the handler runs (so a concurrent duplicate gets 409 instead of running
twice) and completed with the response afterwards. A key whose handler failed on our side is
released, so the client's retry runs again. Domain writes are idempotent on their own too (ledger
keys), which covers a crash between the handler's commit and the completion.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import flask

from shared.db import Query, get_db
from shared.errors import AppError, Conflict, ValidationFailed

CLAIM = Query(
    "idempotency_claim",
    """INSERT INTO idempotency_keys (user_id, key, request_hash) VALUES (:user_id, :key, :hash)
       ON CONFLICT (user_id, key) DO NOTHING RETURNING 1""",
)
FETCH = Query(
    "idempotency_fetch",
    "SELECT request_hash, status, response FROM idempotency_keys WHERE user_id = :user_id AND key = :key",
)
COMPLETE = Query(
    "idempotency_complete",
    """UPDATE idempotency_keys SET status = :status, response = CAST(:response AS jsonb), completed_at = now()
        WHERE user_id = :user_id AND key = :key""",
)
RELEASE = Query("idempotency_release", "DELETE FROM idempotency_keys WHERE user_id = :user_id AND key = :key AND status IS NULL")

# Answers that say "try again" are not remembered.
_NOT_STORED = {409, 429, 503}


def run(user_id: str, key: str, fingerprint: bytes, call: Callable[[], flask.Response]) -> flask.Response:
    """Runs ``call`` once per (user, key); replays its stored response for a repeat with the same body."""
    db = get_db()
    with db.connection() as conn:
        claimed = conn.value(CLAIM, user_id=user_id, key=key, hash=fingerprint)
        if not claimed:
            row = conn.one(FETCH, user_id=user_id, key=key)
            if row is None:  # released between our two statements: the caller may simply retry
                raise Conflict("this request is being processed; retry shortly", code="request_in_progress")
            if bytes(row["request_hash"]) != fingerprint:
                raise ValidationFailed("this Idempotency-Key was used with a different request", code="idempotency_key_reused")
            if row["status"] is None:
                raise Conflict("a request with this Idempotency-Key is still in progress", code="request_in_progress")
            resp = flask.Response(
                json.dumps(row["response"], separators=(",", ":"), ensure_ascii=False), status=row["status"], mimetype="application/json"
            )
            resp.headers["Idempotent-Replayed"] = "true"
            return resp
    from shared.http import error_response

    try:
        resp = call()
    except AppError as err:
        resp = error_response(err)
    except BaseException:
        with db.connection() as conn:
            conn.execute(RELEASE, user_id=user_id, key=key)
        raise
    with db.connection() as conn:
        if resp.status_code in _NOT_STORED or resp.status_code >= 500:
            conn.execute(RELEASE, user_id=user_id, key=key)
        else:
            conn.execute(COMPLETE, user_id=user_id, key=key, status=resp.status_code, response=resp.get_data(as_text=True))
    return resp
