"""The transactional outbox: domain events written with the change they describe, published after commit.

``emit(conn, event_type, payload, key=...)`` inserts one row in the caller's transaction (one
prepared INSERT, ~0.1-0.3 ms), so the event exists exactly when the change committed. Publishing
to the Pub/Sub topic ``domain-events`` (data: the payload as JSON; attributes: ``event_type``,
``key``, ``occurred_at``) happens off the request's hot path:

  * a small per-process background thread is told the new row's id; shortly after (the emitting
    transaction has usually committed by then) it claims the row with ``FOR UPDATE SKIP LOCKED``,
    publishes it and marks ``published_at``. Rows not yet visible (transaction still open) are
    retried a few times over ~3 s, then left to the sweep; rows of rolled-back transactions never
    appear and are simply forgotten;
  * ``sweep(db)`` (the maintenance task ``outbox_sweep``, every minute) publishes every row still
    unpublished after ``min_age_s`` seconds, also under ``FOR UPDATE SKIP LOCKED`` so two sweepers
    (or a sweeper and the background thread) never publish the same row twice at once.

Publishing is at-least-once (a crash between the publish and the commit of ``published_at``
republishes): consumers of ``domain-events`` must be idempotent and deduplicate on the ``key``
attribute, which is unique in the outbox. When Pub/Sub is disabled (``PUBSUB_ENABLED`` false, the
local default) nothing is published: rows stay pending and ``sweep`` reports how many.

``OUTBOX_BACKGROUND_PUBLISH=false`` turns the background thread off (only the sweep publishes).
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from shared import events
from shared.config import get_settings
from shared.db import Conn, Database, Query, get_db
from shared.logs import get_logger

log = get_logger(__name__)

TOPIC = "domain-events"
# Background retry schedule (seconds after emit) for rows not yet visible; then the sweep takes over.
RETRY_DELAYS = (0.02, 0.1, 0.4, 1.0, 2.0)
PUBLISH_TIMEOUT_S = 10.0

INSERT = Query(
    "outbox_insert",
    """INSERT INTO outbox (event_type, key, payload) VALUES (:event_type, :key, CAST(:payload AS jsonb))
       ON CONFLICT (key) DO NOTHING
       RETURNING id""",
)

# The background publisher's claim: only committed, unpublished, unclaimed rows come back.
CLAIM_BY_ID = Query(
    "outbox_claim_by_id",
    """SELECT id, event_type, key, payload::text AS payload, created_at
         FROM outbox
        WHERE id = ANY(CAST(:ids AS bigint[])) AND published_at IS NULL
        ORDER BY id
          FOR UPDATE SKIP LOCKED""",
)

# Of the ids a claim did not return, those that are visible (published, or claimed by someone
# else): done. The others belong to transactions still open (or rolled back).
VISIBLE_IDS = Query("outbox_visible_ids", "SELECT id FROM outbox WHERE id = ANY(CAST(:ids AS bigint[]))")

CLAIM_DUE = Query(
    "outbox_claim_due",
    """SELECT id, event_type, key, payload::text AS payload, created_at
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


def emit(conn: Conn, event_type: str, payload: dict[str, Any], *, key: str) -> int | None:
    """Writes one event in the caller's transaction; returns its id, or None when ``key`` was emitted before."""
    row_id = conn.value(INSERT, event_type=event_type, key=key, payload=json.dumps(payload, separators=(",", ":"), default=str))
    if row_id is not None and _background_enabled():
        _publisher().notify(int(row_id))
    return int(row_id) if row_id is not None else None


# --- publishing -----------------------------------------------------------------------------------
def _background_enabled() -> bool:
    settings = get_settings()
    return settings.outbox_background_publish and settings.pubsub_enabled


def _publish_rows(conn: Conn, rows: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """Publishes claimed rows concurrently and records the outcome of each; returns (published, failed)."""
    if not rows:
        return 0, 0
    client = events._client()
    topic = events.topic_path(TOPIC)
    futures = []
    for row in rows:
        attributes = {"event_type": row["event_type"], "key": row["key"], "occurred_at": row["created_at"].isoformat()}
        futures.append(client.publish(topic, row["payload"].encode(), **attributes))
    ok_ids: list[int] = []
    message_ids: list[str] = []
    failed_ids: list[int] = []
    errors: list[str] = []
    for row, future in zip(rows, futures, strict=True):
        try:
            message_ids.append(str(future.result(timeout=PUBLISH_TIMEOUT_S)))
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
            published, failed = _publish_rows(conn, rows)
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


@dataclass(order=True)
class _Pending:
    due: float
    row_id: int = field(compare=False)
    tries: int = field(compare=False, default=0)


class BackgroundPublisher:
    """One daemon thread per process publishing the rows ``emit`` wrote, shortly after their commit."""

    def __init__(self) -> None:
        self._heap: list[_Pending] = []
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self.published = 0

    def notify(self, row_id: int) -> None:
        with self._cond:
            heapq.heappush(self._heap, _Pending(time.monotonic() + RETRY_DELAYS[0], row_id))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="outbox-publisher", daemon=True)
                self._thread.start()
            self._cond.notify()

    def _take_due(self) -> list[_Pending]:
        with self._cond:
            while True:
                now = time.monotonic()
                if self._heap and self._heap[0].due <= now:
                    batch: list[_Pending] = []
                    while self._heap and self._heap[0].due <= now and len(batch) < 500:
                        batch.append(heapq.heappop(self._heap))
                    return batch
                self._cond.wait(timeout=(self._heap[0].due - now) if self._heap else None)

    def _run(self) -> None:
        while True:
            batch = self._take_due()
            try:
                self._publish(batch)
            except Exception as exc:  # never let the thread die; the sweep covers what we drop
                log.warning("outbox background publish failed: %s", exc, extra={"event": "outbox_publish_failed", "error": str(exc)})

    def _publish(self, batch: list[_Pending]) -> None:
        if not _background_enabled():  # switched off since: the sweep publishes these
            return
        ids = [p.row_id for p in batch]
        with get_db().transaction() as conn:
            rows = conn.all(CLAIM_BY_ID, ids=ids)
            done, _ = _publish_rows(conn, rows)
            self.published += done
            claimed = {r["id"] for r in rows}
            missing = [i for i in ids if i not in claimed]
            visible = {r["id"] for r in conn.all(VISIBLE_IDS, ids=missing)} if missing else set()
        retry = [p for p in batch if p.row_id not in claimed and p.row_id not in visible]
        with self._cond:
            for p in retry:
                p.tries += 1
                if p.tries < len(RETRY_DELAYS):  # else: rolled back, or still open: the sweep's job
                    p.due = time.monotonic() + RETRY_DELAYS[p.tries]
                    heapq.heappush(self._heap, p)

    def idle(self) -> bool:
        with self._cond:
            return not self._heap


_publisher_lock = threading.Lock()
_background: BackgroundPublisher | None = None


def _publisher() -> BackgroundPublisher:
    global _background
    with _publisher_lock:
        if _background is None:
            _background = BackgroundPublisher()
        return _background
