"""Running a maintenance task: parse its options, take its advisory lock, run it, log one line.

Every task connects on its own, as the schema owner (``connection_factory(admin=True)``): ANALYZE
and REINDEX need table ownership in PostgreSQL 16, and the purge deletes rows the application role
may not. Locally that is ``admin_url`` (MIGRATE_DATABASE_URL or the embedded superuser); in Cloud SQL
it is run_maintenance's own IAM user, which docs/maintenance.md makes a member of the owner role.
The connection stays in autocommit (REINDEX CONCURRENTLY refuses a transaction block) and is
closed afterwards, so its session settings (no statement timeout) never reach a pool.

Safe to run twice at once: each task holds ``pg_try_advisory_lock(LOCK_NAMESPACE, key)`` on that
connection for its whole run; a second run finds it taken, logs "skipped: already running" and
returns. The lock dies with the connection, so a killed instance never leaves it behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from functions.maintenance import queries as q
from functions.maintenance import tasks
from shared import error_codes as codes
from shared.config import Settings, get_settings
from shared.db import Conn, connection_factory
from shared.errors import PermanentEventError
from shared.logs import get_logger

log = get_logger(__name__)

# First half of every maintenance advisory lock (the migrator uses the one-argument form).
LOCK_NAMESPACE = 7_310_452


@dataclass(frozen=True)
class Task:
    name: str
    lock_key: int
    fn: Callable[[Conn, Any, Settings], dict[str, Any]]
    options: type[tasks.Options]
    summary: str


TASKS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("analyze", 1, tasks.analyze, tasks.TableOptions, "ANALYZE every table (partitioned parents included)"),
        Task("reindex", 2, tasks.reindex, tasks.TableOptions, "REINDEX TABLE CONCURRENTLY of the hot tables, per partition"),
        Task("session_purge", 3, tasks.session_purge, tasks.PurgeOptions, "delete dead sessions, old attempts/keys, stale counters"),
        Task("reconcile", 4, tasks.reconcile, tasks.ReconcileOptions, "check every ledger invariant; ERROR on a break"),
        Task("outbox_sweep", 5, tasks.outbox_sweep, tasks.SweepOptions, "publish outbox rows left behind"),
        Task("restore_drill", 6, tasks.restore_drill, tasks.DrillOptions, "restore a backup into scratch and check it"),
        Task("clearing", 7, tasks.clearing, tasks.ClearingOptions, "move due pending credits to available"),
        Task("risk_scan", 10, tasks.risk_scan, tasks.RiskScanOptions, "run the trust-and-safety rules over what is new (docs/fraud.md)"),
        Task(
            "partner_secrets_disable",
            11,
            tasks.partner_secrets_disable,
            tasks.PartnerSecretsOptions,
            "disable the Secret Manager versions of retired offerwall secrets (docs/partners.md)",
        ),
    )
}


def parse(name: Any, options: dict[str, Any]) -> tuple[Task, tasks.Options]:
    """The task and its validated options; PermanentEventError for an unknown task or bad options."""
    if not isinstance(name, str) or name not in TASKS:
        raise PermanentEventError(f"unknown maintenance task {name!r}; known: {', '.join(sorted(TASKS))}", code=codes.UNKNOWN_TASK)
    task = TASKS[name]
    try:
        return task, task.options.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PermanentEventError(f"bad options for {name}: {problems}", code=codes.INVALID_TASK_OPTIONS) from exc


def open_connection(settings: Settings) -> Conn:
    """A new, unpooled owner connection in autocommit for one task run."""
    return Conn(connection_factory(settings, admin=True)(), settings)


def run_task(name: Any, options: dict[str, Any] | None = None, *, settings: Settings | None = None) -> dict[str, Any]:
    """Runs one task under its lock; returns {"task", "ran", "result", "ms"} (also logged as one line)."""
    task, opts = parse(name, options or {})
    settings = settings or get_settings()
    started = time.perf_counter()
    conn = open_connection(settings)
    try:
        if not conn.value(q.TRY_LOCK, ns=LOCK_NAMESPACE, key=task.lock_key):
            outcome = {"task": task.name, "ran": False, "result": {"skipped": "already running"}, "ms": _ms(started)}
            log.info("maintenance task %s skipped: already running", task.name, extra={"event": "maintenance_task", **outcome})
            return outcome
        try:
            result = task.fn(conn, opts, settings)
        except Exception as exc:
            log.error(
                "maintenance task %s failed: %s",
                task.name,
                exc,
                exc_info=True,
                extra={"event": "maintenance_task_failed", "task": task.name, "ms": _ms(started)},
            )
            raise
        outcome = {"task": task.name, "ran": True, "result": result, "ms": _ms(started)}
        log.info("maintenance task %s done", task.name, extra={"event": "maintenance_task", **outcome})
        return outcome
    finally:
        conn.raw.close()  # also releases the advisory lock


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)
