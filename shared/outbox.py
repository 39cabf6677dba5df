"""The transactional outbox: domain events written with the change they describe, published after commit.

``emit(conn, event_type, payload, key=...)`` inserts one row in the caller's transaction (one
prepared INSERT, ~0.1-0.3 ms), so the event exists exactly when the change committed. Publishing
to the Pub/Sub topic the row names (``domain-events`` unless ``emit(..., topic=...)`` says otherwise,
as user notifications do with ``notifications``) (data: the payload as JSON; attributes: ``event_type``,
``key``, ``occurred_at``) happens off the request's hot path:

  * within the request: ``publishing()`` (opened by the HTTP router and the event handler) collects
    the ids emitted during the request; when the scope closes, after the response's transaction
    committed, ``publish_committed`` claims those rows with ``FOR UPDATE SKIP LOCKED``, publishes
    them and marks ``published_at``. Rows of rolled-back transactions never appear and are simply
    forgotten. No thread: a function instance gets little CPU once its response is sent. The
    heartbeat opts out (``Router(..., publish_events=False)``): its budget is smaller than a publish;
  * ``sweep(db)`` (the maintenance task ``outbox_sweep``, every minute) publishes every row still
    unpublished after ``min_age_s`` seconds, also under ``FOR UPDATE SKIP LOCKED`` so two sweepers
    (or a sweeper and a request's publish) never publish the same row twice at once.

Publishing is at-least-once (a crash between the publish and the commit of ``published_at``
republishes): consumers of ``domain-events`` must be idempotent and deduplicate on the ``key``
attribute, which is unique in the outbox. When Pub/Sub is disabled (``PUBSUB_ENABLED`` false, the
local default) nothing is published: rows stay pending and ``sweep`` reports how many.

``OUTBOX_PUBLISH_AFTER_COMMIT=false`` turns the request's publish off (only the sweep publishes).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
from collections.abc import Iterator, Sequence
from typing import Any

from shared import pubsub
from shared.config import get_settings
from shared.db import Conn, Database, Query, get_db
from shared.logs import get_logger

log = get_logger(__name__)

TOPIC = "domain-events"
# How long a request waits for Pub/Sub to accept its events before leaving them to the sweep.
PUBLISH_TIMEOUT_S = 2.0
# How long the sweep waits for each of its events.
SWEEP_PUBLISH_TIMEOUT_S = 10.0

INSERT_MANY = Query(
    "outbox_insert_many",
    """INSERT INTO outbox (event_type, key, payload, topic)
       SELECT :event_type, e->>'key', e->'payload', :topic
         FROM jsonb_array_elements(CAST(:events AS jsonb)) AS e
       ON CONFLICT (key) DO NOTHING
       RETURNING id""",
)

INSERT = Query(
    "outbox_insert",
    """INSERT INTO outbox (event_type, key, payload, topic) VALUES (:event_type, :key, CAST(:payload AS jsonb), :topic)
       ON CONFLICT (key) DO NOTHING
       RETURNING id""",
)

# The request's claim: only committed, unpublished, unclaimed rows come back.
CLAIM_BY_ID = Query(
    "outbox_claim_by_id",
    """SELECT id, event_type, key, payload::text AS payload, created_at, topic
         FROM outbox
        WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
        ORDER BY id
          FOR UPDATE SKIP LOCKED""",
)

CLAIM_DUE = Query(
    "outbox_claim_due",
    """SELECT id, event_type, key, payload::text AS payload, created_at, topic
         FROM outbox
        WHERE published_at IS NULL AND created_at <= now() - make_interval(secs => :min_age_s)
        ORDER BY created_at, id
        LIMIT :limit
          FOR UPDATE SKIP LOCKED""",
)

MARK_PUBLISHED = Query(
    "outbox_mark_published",
    """UPDATE outbox o
          SET published_at = greatest(now(), o.created_at), attempts = o.attempts + 1, last_error = NULL, message_id = u.message_id
         FROM unnest(CAST(:ids AS bigint[]), CAST(:message_ids AS text[])) AS u(id, message_id)
        WHERE o.id = u.id""",
)

MARK_FAILED = Query(
    "outbox_mark_failed",
    """UPDATE outbox o
          SET attempts = o.attempts + 1, last_error = left(u.error, 2000)
         FROM unnest(CAST(:ids AS bigint[]), CAST(:errors AS text[])) AS u(id, error)
        WHERE o.id = u.id""",
)

PENDING = Query(
    "outbox_pending",
    """SELECT count(*) AS pending, min(created_at) AS oldest,
              count(*) FILTER (WHERE attempts > 0) AS failed_before
         FROM outbox WHERE published_at IS NULL""",
    prepared=False,
)

PRUNE = Query(
    "outbox_prune",
    """DELETE FROM outbox WHERE id IN (
           SELECT id FROM outbox
            WHERE published_at IS NOT NULL AND published_at < now() - make_interval(days => :older_than_days)
            LIMIT :limit)""",
    prepared=False,
)


def emit(conn: Conn, event_type: str, payload: dict[str, Any], *, key: str, topic: str = TOPIC) -> int | None:
    """Writes one event in the caller's transaction; returns its id, or None when ``key`` was emitted before.

    ``topic`` is the Pub/Sub topic the row is published to (domain events by default; user
    notifications go to ``notifications``): the one publisher and the sweep read it from the row."""
    row_id = conn.value(
        INSERT, event_type=event_type, key=key, payload=json.dumps(payload, separators=(",", ":"), default=str), topic=topic
    )
    if row_id is None:
        return None
    noted = _scope.get()
    if noted is not None:
        noted.append(int(row_id))
    return int(row_id)


def emit_many(conn: Conn, event_type: str, events: Sequence[tuple[dict[str, Any], str]], *, topic: str = TOPIC) -> list[int]:
    """``emit`` for many ``(payload, key)`` events of one type in one statement (a batch's events);
    returns the ids of the rows written (keys emitted before write nothing)."""
    if not events:
        return []
    rows = conn.all(
        INSERT_MANY,
        event_type=event_type,
        topic=topic,
        events=json.dumps([{"payload": payload, "key": key} for payload, key in events], separators=(",", ":"), default=str),
    )
    ids = [int(r["id"]) for r in rows]
    noted = _scope.get()
    if noted is not None:
        noted.extend(ids)
    return ids


# --- publishing -----------------------------------------------------------------------------------
# The ids emitted in the current request (None outside a ``publishing()`` scope: the sweep publishes).
_scope: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("outbox_scope", default=None)


@contextlib.contextmanager
def publishing() -> Iterator[list[int]]:
    """Collects the events emitted inside; publishes the committed ones when the block ends.

    Opened once per request by the HTTP router and the event handler, around everything the
    handler commits; nested scopes defer to the outermost one."""
    if _scope.get() is not None:
        yield []
        return
    noted: list[int] = []
    token = _scope.set(noted)
    try:
        yield noted
    finally:
        _scope.reset(token)
        if noted:
            publish_committed(noted)


def publish_committed(ids: Sequence[int], db: Database | None = None) -> int:
    """Publishes the committed, still unpublished rows among ``ids`` now; returns how many were published.

    Never raises: a failure is recorded on the rows (or logged) and the sweep publishes them later."""
    settings = get_settings()
    if not (settings.outbox_publish_after_commit and settings.pubsub_enabled):
        return 0
    try:
        with (db or get_db()).transaction() as conn:
            rows = conn.all(CLAIM_BY_ID, ids=list(ids))
            published, _ = _publish_rows(conn, rows, timeout=PUBLISH_TIMEOUT_S)
            return published
    except Exception as exc:  # the response is already decided: the sweep covers what we could not publish
        log.warning("outbox publish after commit failed: %s", exc, extra={"event": "outbox_publish_failed", "error": str(exc)})
        return 0


def _publish_rows(conn: Conn, rows: Sequence[dict[str, Any]], *, timeout: float) -> tuple[int, int]:
    """Publishes claimed rows concurrently and records the outcome of each; returns (published, failed)."""
    if not rows:
        return 0, 0
    client = pubsub.client()
    futures = []
    for row in rows:
        attributes = {"event_type": row["event_type"], "key": row["key"], "occurred_at": row["created_at"].isoformat()}
        futures.append(client.publish(pubsub.topic_path(row.get("topic") or TOPIC), row["payload"].encode(), **attributes))
    ok_ids: list[int] = []
    message_ids: list[str] = []
    failed_ids: list[int] = []
    errors: list[str] = []
    for row, future in zip(rows, futures, strict=True):
        try:
            message_ids.append(str(future.result(timeout=timeout)))
            ok_ids.append(row["id"])
        except Exception as exc:  # recorded on the row; the sweep tries again
            failed_ids.append(row["id"])
            errors.append(f"{type(exc).__name__}: {exc}")
    if ok_ids:
        conn.execute(MARK_PUBLISHED, ids=ok_ids, message_ids=message_ids)
    if failed_ids:
        conn.execute(MARK_FAILED, ids=failed_ids, errors=errors)
        log.warning(
            "outbox: %d of %d events failed to publish: %s",
            len(failed_ids),
            len(rows),
            errors[0],
            extra={"event": "outbox_publish_failed", "failed": len(failed_ids), "error": errors[0]},
        )
    return len(ok_ids), len(failed_ids)


def sweep(db: Database | None = None, limit: int = 500, *, min_age_s: float = 5.0) -> dict[str, Any]:
    """Publishes up to ``limit`` events unpublished for ``min_age_s`` seconds; safe to run concurrently.

    Returns ``{"published", "failed", "pending", "oldest_pending_at", "pubsub_enabled"}`` where
    ``pending`` counts what is still unpublished afterwards.
    """
    db = db or get_db()
    published = failed = 0
    enabled = get_settings().pubsub_enabled
    if enabled:
        with db.transaction() as conn:
            rows = conn.all(CLAIM_DUE, min_age_s=float(min_age_s), limit=int(limit))
            published, failed = _publish_rows(conn, rows, timeout=SWEEP_PUBLISH_TIMEOUT_S)
    with db.connection() as conn:
        state = conn.one(PENDING) or {}
    report = {
        "published": published,
        "failed": failed,
        "pending": int(state.get("pending") or 0),
        "oldest_pending_at": state.get("oldest"),
        "pubsub_enabled": enabled,
    }
    log.info("outbox sweep: %s", report, extra={"event": "outbox_swept", **{k: str(v) for k, v in report.items()}})
    return report


def prune(db: Database | None = None, *, older_than_days: int = 7, limit: int = 50_000) -> int:
    """Deletes published events older than ``older_than_days`` (the outbox is not an archive); returns the count."""
    db = db or get_db()
    with db.connection() as conn:
        return conn.execute(PRUNE, older_than_days=int(older_than_days), limit=int(limit))
