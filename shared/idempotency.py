"""Idempotency-Key for writes a client may retry: same key and body replays the first answer.

The contract (docs/idempotency.md), the same for every route that accepts the header:

* The first request with a key **claims** it with a lease of ``IDEMPOTENCY_LEASE_S`` seconds and
  runs. Its answer is stored, unless it is one that says "try again" (409, 429, 5xx): then the claim
  is released and the next retry runs afresh.
* A repeat with the same key and body gets the stored answer (``Idempotent-Replayed: true``); with
  another body, 422 ``idempotency_key_reused``.
* A repeat while the claim's lease runs gets 409 ``request_in_progress`` with ``Retry-After`` (the
  seconds left of the lease).
* A repeat after the lease, when no answer was stored (the process died, the database went away while
  the answer was being stored), **takes the claim over** and runs the request again. That is safe
  because every domain write behind a key is itself idempotent on something derived from the key
  (a payout's id, a ledger entry's key): the re-run finds the committed effect and answers with it,
  or, if nothing committed, does the work once. So no key stays unanswerable for longer than the
  lease plus one retry.

Completing and releasing never raise: the answer the client gets does not depend on whether the
database took the bookkeeping, and a claim whose release failed simply expires with its lease.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import flask

from shared import error_codes as codes
from shared.config import get_settings
from shared.db import Conn, Query, get_db
from shared.errors import AppError, Conflict, ValidationFailed
from shared.logs import get_logger
from shared.render import dumps, error_response

log = get_logger(__name__)

# One statement: a new key, or the takeover of an open claim whose lease has run out (a claim made by
# a release before migration 0040 has no lease and counts as expired). Nothing comes back when the key
# is completed, leased to a live attempt, or was used with another body.
CLAIM = Query(
    "idempotency_claim",
    """INSERT INTO idempotency_keys AS k (user_id, key, request_hash, attempt, locked_until)
       VALUES (:user_id, :key, :hash, CAST(:attempt AS uuid), now() + make_interval(secs => :lease))
       ON CONFLICT (user_id, key) DO UPDATE
          SET attempt = EXCLUDED.attempt, locked_until = EXCLUDED.locked_until
        WHERE k.status IS NULL AND k.request_hash = EXCLUDED.request_hash
          AND (k.locked_until IS NULL OR k.locked_until <= now())
       RETURNING (k.xmax <> 0) AS taken_over""",
)
FETCH = Query(
    "idempotency_fetch",
    """SELECT request_hash, status, response,
              GREATEST(1, ceil(EXTRACT(EPOCH FROM (locked_until - now()))))::int AS retry_after
         FROM idempotency_keys WHERE user_id = :user_id AND key = :key""",
)
# The first attempt to finish stores its answer, even one whose lease a retry has taken over: both
# answer the same request from the same committed state.
COMPLETE = Query(
    "idempotency_complete",
    """UPDATE idempotency_keys SET status = :status, response = CAST(:response AS jsonb), completed_at = now(),
              locked_until = NULL
        WHERE user_id = :user_id AND key = :key AND status IS NULL""",
)
# Only the attempt that holds the claim may give it up (a slow attempt must not free its successor's).
RELEASE = Query(
    "idempotency_release",
    "DELETE FROM idempotency_keys WHERE user_id = :user_id AND key = :key AND status IS NULL AND attempt = CAST(:attempt AS uuid)",
)

# Answers that say "try again" are not remembered.
_NOT_STORED = {409, 429, 503}


@dataclass
class _Claim:
    user_id: str
    key: str
    stored: bool = False


# The keyed request this thread is running, for ``store_answer_in``.
_running: ContextVar[_Claim | None] = ContextVar("idempotency_running", default=None)


def store_answer_in(conn: Conn, payload: Any, status: int) -> None:
    """Stores the answer of the keyed request being handled in the caller's open transaction, so the
    answer commits with the business effect or not at all (the Stripe/Brandur pattern): a crash after
    that commit leaves a key that replays at once instead of one that waits for its lease. A no-op
    outside a keyed request. ``payload`` and ``status`` must be what the handler then answers."""
    claim = _running.get()
    if claim is None or status in _NOT_STORED or status >= 500:
        return
    conn.execute(COMPLETE, user_id=claim.user_id, key=claim.key, status=status, response=dumps(payload))
    claim.stored = True


def run(user_id: str, key: str, fingerprint: bytes, call: Callable[[], flask.Response]) -> flask.Response:
    """Runs ``call`` once per (user, key); replays its stored response for a repeat with the same body."""
    settings = get_settings()
    db = get_db()
    attempt = str(uuid.uuid4())
    with db.connection() as conn:
        claimed = conn.one(CLAIM, user_id=user_id, key=key, hash=fingerprint, attempt=attempt, lease=float(settings.idempotency_lease_s))
        if claimed is None:
            return _answer_existing(conn.one(FETCH, user_id=user_id, key=key), fingerprint, settings.idempotency_lease_s)
    taken_over = bool(claimed["taken_over"])
    if taken_over:
        log.warning(
            "idempotency key taken over after its lease expired",
            extra={"event": "idempotency_takeover", "user_id": user_id},
        )
    _fault_pause("before_call", key, taken_over)
    claim = _Claim(user_id, key)
    token = _running.set(claim)
    try:
        resp = call()
    except AppError as err:
        resp = error_response(err)
    except BaseException:
        _release(user_id, key, attempt)
        raise
    finally:
        _running.reset(token)
    _fault_pause("after_call", key, taken_over)
    if resp.status_code in _NOT_STORED or resp.status_code >= 500:
        _release(user_id, key, attempt)
    elif not (claim.stored and resp.status_code < 400):  # an error after the handler stored its answer rolled it back
        _complete(user_id, key, resp)
    return resp


def _answer_existing(row: dict[str, Any] | None, fingerprint: bytes, lease_s: float) -> flask.Response:
    if row is None:  # released between our two statements: the caller may simply retry
        err = Conflict("this request is being processed; retry shortly", code=codes.REQUEST_IN_PROGRESS, details={"retry_after_seconds": 1})
        err.headers["Retry-After"] = "1"
        raise err
    if bytes(row["request_hash"]) != fingerprint:
        raise ValidationFailed("this Idempotency-Key was used with a different request", code=codes.IDEMPOTENCY_KEY_REUSED)
    if row["status"] is None:
        wait = max(1, min(int(row["retry_after"] or 1), int(lease_s) + 1))
        err = Conflict(
            "a request with this Idempotency-Key is still in progress; retry after the time in Retry-After",
            code=codes.REQUEST_IN_PROGRESS,
            details={"retry_after_seconds": wait},
        )
        err.headers["Retry-After"] = str(wait)
        raise err
    resp = flask.Response(
        json.dumps(row["response"], separators=(",", ":"), ensure_ascii=False), status=row["status"], mimetype="application/json"
    )
    resp.headers["Idempotent-Replayed"] = "true"
    return resp


def _complete(user_id: str, key: str, resp: flask.Response) -> None:
    """Stores the answer; if the database refuses now, the claim expires and a retry re-derives it."""
    try:
        with get_db().connection() as conn:
            conn.execute(COMPLETE, user_id=user_id, key=key, status=resp.status_code, response=resp.get_data(as_text=True))
    except Exception as exc:
        log.warning("could not store an idempotent answer: %s", exc, extra={"event": "idempotency_complete_failed", "user_id": user_id})


def _release(user_id: str, key: str, attempt: str) -> None:
    """Gives the claim up so a retry runs at once; if the database refuses now, the lease runs out instead."""
    try:
        with get_db().connection() as conn:
            conn.execute(RELEASE, user_id=user_id, key=key, attempt=attempt)
    except Exception as exc:
        log.warning("could not release an idempotency key: %s", exc, extra={"event": "idempotency_release_failed", "user_id": user_id})


def _fault_pause(point: str, key: str, taken_over: bool) -> None:
    """Tests only (``EARNPAY_FAULT_PAUSE``, refused when deployed): the first attempt at a key that
    starts with ``pause-<point>-`` stands still at ``point`` for the configured seconds, or until the
    file named by ``until`` appears, so a fault test can kill the server or the database while
    requests are known to stand exactly there, and then let them go on. A takeover (the retry after a
    crash) never pauses."""
    pauses = get_settings().fault_pauses
    if not pauses or taken_over or point not in pauses or not key.startswith(f"pause-{point}-"):
        return
    deadline = time.monotonic() + float(pauses[point])
    release = Path(pauses["until"]) if "until" in pauses else None
    while time.monotonic() < deadline and not (release is not None and release.exists()):
        time.sleep(0.02)
