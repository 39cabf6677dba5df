"""The ``health`` function: database round trip, pool use and the applied migration version."""

from __future__ import annotations

import time

from pydantic import Field

from shared.db import Query, get_db
from shared.http import Ctx, Reply, Router
from shared.models import Response

router = Router("health")

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
