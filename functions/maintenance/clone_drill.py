"""The restore drill in Cloud SQL: a point-in-time clone of the primary, checked, then deleted.

This path cannot run outside Google Cloud; the tests check only the Admin API requests it builds
(``*_request`` functions). Locally and in CI the drill is ``restore.dump_restore_drill``.

A clone takes longer than one invocation of ``run_maintenance`` may run (540 s), so the drill is a
small state machine kept in ``restore_drills`` (one open ``pitr_clone`` row at most) and moved on
by each ``{"task": "restore_drill"}`` message; the scheduler sends one every 10 minutes during the
drill window (infra/scheduler.tf), and a tick with nothing to do returns at once:

    (none) --clone requested--> cloning --operation DONE--> checking --checks run, delete requested--> deleting --DONE--> done
    any phase older than MAX_DRILL_HOURS, or an operation error --> failed (the clone is deleted if it exists)

The checks on the clone (through the Cloud SQL connector, as the maintenance IAM user):
  * ledger.verify over everything must be ok;
  * every earnings entry and user created up to 5 minutes before the point in time is there, and
    nothing created after it (append-only tables: their counts as of a time are exact on the primary);
  * the migration version equals the primary's version as of the point in time;
  * the report records the recovery time: clone requested -> clone usable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from functions.maintenance.restore import check_ledger, collect_facts
from shared.config import Settings
from shared.db import Conn, Database, Query
from shared.logs import get_logger
from shared.render import dumps

log = get_logger(__name__)

ADMIN_API = "https://sqladmin.googleapis.com/v1"
SCOPES = ("https://www.googleapis.com/auth/sqlservice.admin",)
MAX_DRILL_HOURS = 6
# Rows created this long before the point in time were committed before it (statements time out
# after 30 s and idle transactions after 60 s), so the clone must hold them.
COMMIT_SLACK = timedelta(minutes=5)


@dataclass(frozen=True)
class ApiRequest:
    method: str
    url: str
    body: dict[str, Any] | None = None


def parse_connection_name(name: str) -> tuple[str, str, str]:
    """``project:region:instance`` -> its three parts."""
    parts = name.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"not an instance connection name: {name!r}")
    return parts[0], parts[1], parts[2]


def rfc3339(when: datetime) -> str:
    """The Admin API's timestamp format: UTC with a Z and milliseconds."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.astimezone(UTC).microsecond // 1000:03d}Z"


def clone_name(source: str, when: datetime) -> str:
    """A fresh instance name per drill (Cloud SQL names cannot be reused for a week after deletion)."""
    return f"{source[:60]}-drill-{when.astimezone(UTC):%Y%m%d%H%M}"


def clone_request(project: str, source: str, target: str, point_in_time: datetime) -> ApiRequest:
    """instances.clone to a point in time (what ``gcloud sql instances clone --point-in-time`` sends)."""
    return ApiRequest(
        "POST",
        f"{ADMIN_API}/projects/{project}/instances/{source}/clone",
        {"cloneContext": {"kind": "sql#cloneContext", "destinationInstanceName": target, "pointInTime": rfc3339(point_in_time)}},
    )


def operation_request(project: str, operation: str) -> ApiRequest:
    return ApiRequest("GET", f"{ADMIN_API}/projects/{project}/operations/{operation}")


def _only_drill_clones(instance: str) -> None:
    """This code may switch off protection and delete only what it created: never the primary."""
    if "-drill-" not in instance:
        raise ValueError(f"refusing to touch {instance!r}: not a restore-drill clone")


def allow_deletion_request(project: str, instance: str) -> ApiRequest:
    """The clone inherits deletion protection from the primary: switch it off before the delete."""
    _only_drill_clones(instance)
    return ApiRequest("PATCH", f"{ADMIN_API}/projects/{project}/instances/{instance}", {"settings": {"deletionProtectionEnabled": False}})


def delete_request(project: str, instance: str) -> ApiRequest:
    _only_drill_clones(instance)
    return ApiRequest("DELETE", f"{ADMIN_API}/projects/{project}/instances/{instance}")


class AdminApi:
    """The Cloud SQL Admin API over google-auth's AuthorizedSession (the function's service account)."""

    def __init__(self, session: Any = None) -> None:
        if session is None:
            import google.auth
            from google.auth.transport.requests import AuthorizedSession

            credentials, _ = google.auth.default(scopes=list(SCOPES))
            session = AuthorizedSession(credentials)
        self.session = session

    def call(self, req: ApiRequest) -> dict[str, Any]:
        resp = self.session.request(req.method, req.url, json=req.body, timeout=60)
        if resp.status_code >= 400:
            raise RuntimeError(f"Cloud SQL Admin API {req.method} {req.url}: {resp.status_code} {resp.text[:500]}")
        return dict(resp.json() or {})

    def wait(self, project: str, operation: str, *, deadline: float, every_s: float = 10.0) -> dict[str, Any]:
        """Polls an operation until DONE or the monotonic ``deadline``; returns its last state."""
        while True:
            op = self.call(operation_request(project, operation))
            if op.get("status") == "DONE" or time.monotonic() + every_s > deadline:
                return op
            time.sleep(every_s)


# --- state -------------------------------------------------------------------------------------------------
OPEN = Query(
    "clone_drill_open",
    """SELECT id, source, target, point_in_time, phase, operation, report, started_at, updated_at
         FROM restore_drills WHERE mode = 'pitr_clone' AND phase NOT IN ('done', 'failed')""",
    prepared=False,
)
LAST_DONE = Query(
    "clone_drill_last_done",
    "SELECT max(finished_at) FROM restore_drills WHERE mode = 'pitr_clone' AND phase = 'done'",
    prepared=False,
)
START = Query(
    "clone_drill_start",
    """INSERT INTO restore_drills (mode, source, target, point_in_time, phase, operation)
       VALUES ('pitr_clone', :source, :target, :point_in_time, 'cloning', :operation) RETURNING id""",
    prepared=False,
)
MOVE = Query(
    "clone_drill_move",
    """UPDATE restore_drills
          SET phase = :phase, operation = coalesce(:operation, operation), report = coalesce(CAST(:report AS jsonb), report),
              ok = coalesce(:ok, ok), error = coalesce(:error, error), updated_at = now(),
              finished_at = CASE WHEN :phase IN ('done', 'failed') THEN now() END
        WHERE id = :id""",
    prepared=False,
)
AS_OF = Query(
    "clone_drill_as_of",
    """SELECT (SELECT count(*) FROM earnings WHERE created_at <= :until) AS earnings,
              (SELECT count(*) FROM earnings WHERE created_at <= :surely) AS earnings_surely,
              (SELECT count(*) FROM users WHERE created_at <= :until) AS users,
              (SELECT count(*) FROM users WHERE created_at <= :surely) AS users_surely,
              (SELECT max(version) FROM schema_migrations WHERE applied_at <= :until) AS migration_version""",
    prepared=False,
)


def check_clone(clone: Conn, primary: Conn, point_in_time: datetime) -> dict[str, Any]:
    """The drill's checks of a clone of ``primary`` taken at ``point_in_time``."""
    facts = collect_facts(clone)
    as_of = primary.one(AS_OF, until=point_in_time, surely=point_in_time - COMMIT_SLACK) or {}
    checks: dict[str, Any] = {"ledger": check_ledger(clone)}
    for table in ("earnings", "users"):
        got = sum(n for t, n in facts["counts"].items() if t == table or t.startswith(f"{table}_p"))
        low, high = int(as_of.get(f"{table}_surely") or 0), int(as_of.get(table) or 0)
        newest = facts["newest"].get(table)
        checks[f"{table}_as_of"] = {
            "ok": low <= got <= high and (newest is None or newest <= point_in_time),
            "restored": got,
            "expected_between": [low, high],
            "newest": newest.isoformat() if newest else None,
        }
    checks["migration_version"] = {
        "ok": facts["migration_version"] == as_of.get("migration_version"),
        "restored": facts["migration_version"],
        "expected": as_of.get("migration_version"),
    }
    checks["row_counts"] = {"ok": True, "tables": len(facts["counts"]), "rows": sum(facts["counts"].values())}
    return checks


def advance(
    primary: Conn,
    settings: Settings,
    *,
    api: AdminApi | None = None,
    now: datetime | None = None,
    minutes_ago: int = 60,
    force: bool = False,
    budget_s: float = 420.0,
    open_clone: Callable[[str], Database] | None = None,
) -> dict[str, Any]:
    """Moves the clone drill one or more steps within ``budget_s``; returns where it stands."""
    if not settings.db_instance_connection_name:
        raise RuntimeError("the clone drill needs DB_INSTANCE_CONNECTION_NAME (Cloud SQL)")
    project, region, source = parse_connection_name(settings.db_instance_connection_name)
    api = api or AdminApi()
    now = now or datetime.now(UTC)
    deadline = time.monotonic() + budget_s
    row = primary.one(OPEN)
    if row is None:
        last = primary.value(LAST_DONE)
        if last is not None and not force and now - last < timedelta(days=20):
            return {"phase": "idle", "last_drill_done_at": last.isoformat()}
        point_in_time = now - timedelta(minutes=minutes_ago)
        target = clone_name(source, now)
        op = api.call(clone_request(project, source, target, point_in_time))
        drill_id = primary.value(START, source=source, target=target, point_in_time=point_in_time, operation=op.get("name"))
        log.info(
            "restore drill: cloning %s to %s at %s", source, target, rfc3339(point_in_time), extra={"event": "restore_drill_clone_started"}
        )
        row = primary.one(OPEN)
        assert row is not None and row["id"] == drill_id
    drill_id, target, phase = row["id"], row["target"], row["phase"]

    def move(phase: str, **kw: Any) -> None:
        primary.execute(
            MOVE, id=drill_id, phase=phase, operation=kw.get("operation"), report=kw.get("report"), ok=kw.get("ok"), error=kw.get("error")
        )

    if now - row["started_at"] > timedelta(hours=MAX_DRILL_HOURS):
        move("failed", ok=False, error=f"drill still in phase {phase} after {MAX_DRILL_HOURS} h")
        _delete_quietly(api, project, target)
        return {"phase": "failed", "drill": drill_id, "error": "timed out"}

    if phase == "cloning":
        op = api.wait(project, row["operation"], deadline=deadline - 120)
        if op.get("status") != "DONE":
            return {"phase": "cloning", "drill": drill_id, "target": target}
        if op.get("error"):
            move("failed", ok=False, error=dumps(op["error"])[:2000])
            _delete_quietly(api, project, target)
            return {"phase": "failed", "drill": drill_id, "error": op["error"]}
        move("checking")
        phase = "checking"

    if phase == "checking":
        clone_db = (open_clone or (lambda name: _clone_database(settings, project, region, name)))(target)
        try:
            with clone_db.connection() as clone:
                clone.script("SET statement_timeout = 0")
                checks = check_clone(clone, primary, row["point_in_time"])
        finally:
            clone_db.dispose()
        failed = [k for k, v in checks.items() if not v["ok"]]
        ready = datetime.now(UTC)
        report = {
            "ok": not failed,
            "mode": "pitr_clone",
            "source": source,
            "clone": target,
            "point_in_time": rfc3339(row["point_in_time"]),
            "recovery_time_s": round((ready - row["started_at"]).total_seconds()),
            "failed_checks": failed,
            "checks": checks,
        }
        api.call(allow_deletion_request(project, target))
        op = api.call(delete_request(project, target))
        move("deleting", operation=op.get("name"), report=dumps(report), ok=not failed)
        log.log(
            20 if not failed else 40,
            "restore drill %s: %s",
            target,
            "ok" if not failed else f"FAILED {failed}",
            extra={"event": "restore_drill" if not failed else "restore_drill_failed", "report": report},
        )
        phase, row = "deleting", {**row, "operation": op.get("name")}

    if phase == "deleting":
        op = api.wait(project, row["operation"], deadline=deadline)
        if op.get("status") != "DONE":
            return {"phase": "deleting", "drill": drill_id, "target": target}
        final = (
            primary.one(Query("clone_drill_ok", "SELECT ok, report FROM restore_drills WHERE id = :id", prepared=False), id=drill_id) or {}
        )
        move("done" if final.get("ok") else "failed")
        return {"phase": "done" if final.get("ok") else "failed", "drill": drill_id, "report": final.get("report")}
    return {"phase": phase, "drill": drill_id}


def _clone_database(settings: Settings, project: str, region: str, instance: str) -> Database:
    """A one-connection pool on the clone through the connector, as this function's IAM user."""
    clone_settings = settings.model_copy(
        update={"db_instance_connection_name": f"{project}:{region}:{instance}", "db_replica_connection_name": None, "db_pool_size": 1}
    )
    return Database(clone_settings, admin=True)


def _delete_quietly(api: AdminApi, project: str, instance: str) -> None:
    try:
        api.call(allow_deletion_request(project, instance))
        api.call(delete_request(project, instance))
    except Exception:  # it may never have been created; the operator sees the failed drill either way
        log.warning("could not delete drill clone %s", instance, exc_info=True, extra={"event": "restore_drill_cleanup_failed"})
