"""The ``health`` function: database round trip, pool use and the applied migration version."""

from __future__ import annotations

import time

from pydantic import Field

from shared import metrics
from shared.db import Query, get_db, get_read_db
from shared.http import Ctx, Reply, Router
from shared.models import Response

router = Router("health")

ACTIVE_SESSIONS = Query(
    "health_active_sessions",
    "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND last_seen_at > now() - interval '5 minutes'",
)


def _active_sessions() -> int:
    # User session concurrency (earnpay.sessions.active). Counted by this function only: uptime checks
    # call it every minute on at most max_instances instances, so the count runs about once a minute,
    # on the replica where one is configured, instead of once per instance of every function.
    with get_read_db().connection() as conn:
        return int(conn.value(ACTIVE_SESSIONS) or 0)


metrics.set_active_sessions_source(_active_sessions)

PING = Query("health_ping", "SELECT 1")
MIGRATION_VERSION = Query("health_migration_version", "SELECT max(version) FROM schema_migrations")


class DatabaseHealth(Response):
    round_trip_ms: float
    migration_version: int | None = Field(description="the newest applied migration")


class PoolStatus(Response):
    size: int
    checked_out: int
    idle: int
    overflow: int


class Health(Response):
    status: str
    database: DatabaseHealth
    pool: PoolStatus


@router.route("GET", "/", auth=None, response=Health, summary="Liveness and readiness: database round trip, pool use, migration version")
def health(ctx: Ctx) -> Reply:
    db = get_db()
    with db.connection() as conn:
        started = time.perf_counter()
        conn.value(PING)
        rtt_ms = (time.perf_counter() - started) * 1000
        version = conn.value(MIGRATION_VERSION)
    return Reply({"status": "ok", "database": {"round_trip_ms": round(rtt_ms, 3), "migration_version": version}, "pool": db.pool_status()})
