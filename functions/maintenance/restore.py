"""The restore drill, local flavour: ``pg_dump -Fc`` of the live database, ``pg_restore`` into a
scratch database on the same server, checks, then the scratch database is dropped.

The source's facts (row count and newest ``created_at`` of every table, migration version, money
totals) are read in one REPEATABLE READ transaction whose snapshot is exported and handed to
``pg_dump --snapshot``: the dump and the facts describe the same instant, so the restored copy must
match them exactly even while the application keeps writing. The restored copy must also pass the
ledger verification (hash chains, balances equal the sums of entries).

The production flavour (a point-in-time clone of the Cloud SQL instance) is in ``clone_drill``;
both use ``collect_facts`` and ``check_ledger`` from here.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

from functions.ledger import service as ledger
from shared.config import Settings, get_settings
from shared.db import Conn, Query, _session_setup, connect_url, with_database
from shared.logs import get_logger
from shared.render import dumps

log = get_logger(__name__)

# One statement that writes the per-table statement: count(*) and max(created_at) of every table
# (partitions included, parents excluded: their rows are the partitions').
FACTS_SQL = Query(
    "drill_facts_sql",
    """SELECT string_agg(
               format('SELECT %L AS table_name, count(*) AS n, %s AS newest FROM %I.%I',
                      c.relname,
                      CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a
                                         WHERE a.attrelid = c.oid AND a.attname = 'created_at' AND NOT a.attisdropped
                                           AND a.atttypid = 'timestamptz'::regtype)
                           THEN 'max(created_at)' ELSE 'NULL::timestamptz' END,
                      n.nspname, c.relname),
               ' UNION ALL ' ORDER BY c.relname)
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'public' AND c.relkind = 'r'""",
    prepared=False,
)
# The newest rows of the tables that matter most, across partitions (earnings' leaves are earnings_pNN).
KEY_NEWEST = Query(
    "drill_key_newest",
    "SELECT (SELECT max(created_at) FROM users) AS users, (SELECT max(created_at) FROM earnings) AS earnings",
    prepared=False,
)
MIGRATION_VERSION = Query("drill_migration_version", "SELECT max(version) FROM schema_migrations", prepared=False)
MONEY = Query(
    "drill_money",
    """SELECT (SELECT coalesce(sum(amount), 0) FROM earnings) AS entries_total,
              (SELECT coalesce(sum(available), 0) FROM balances) AS available_total""",
    prepared=False,
)
EXPORT_SNAPSHOT = Query("drill_export_snapshot", "SELECT pg_export_snapshot()", prepared=False)
DATABASE_NAME = Query("drill_database_name", "SELECT current_database()", prepared=False)
OPEN_DRILL = Query(
    "drill_open",
    """INSERT INTO restore_drills (mode, source, target) VALUES ('dump_restore', :source, :target) RETURNING id""",
    prepared=False,
)
# Any local drill still open was interrupted (the caller holds the drill's advisory lock).
ABANDON_DRILLS = Query(
    "drill_abandon",
    """UPDATE restore_drills SET phase = 'failed', ok = false, error = 'interrupted', finished_at = now(), updated_at = now()
        WHERE mode = 'dump_restore' AND phase NOT IN ('done', 'failed')""",
    prepared=False,
)
CLOSE_DRILL = Query(
    "drill_close",
    """UPDATE restore_drills SET phase = :phase, ok = :ok, report = CAST(:report AS jsonb), error = :error,
              finished_at = now(), updated_at = now()
        WHERE id = :id""",
    prepared=False,
)

# The newest timestamps the report names first (every table's is compared).
KEY_TABLES = ("users", "earnings")


class DrillError(RuntimeError):
    """The drill could not run (a tool is missing, the dump or the restore failed)."""


# --- tools ----------------------------------------------------------------------------------------------
def pg_bin(name: str) -> str:
    """The path of a PostgreSQL client program: PG_BIN_DIR, then pgserver's (PostgreSQL 16), then PATH.

    pg_dump refuses a server newer than itself, so the embedded server's own binaries come first.
    """
    candidates: list[Path] = []
    bin_dir = get_settings().pg_bin_dir
    if bin_dir:
        candidates.append(bin_dir / name)
    try:
        import pgserver

        candidates.append(Path(pgserver.__file__).parent / "pginstall" / "bin" / name)
    except ImportError:  # production images do not ship pgserver
        pass
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if not found:
        raise DrillError(f"{name} not found (set PG_BIN_DIR to a PostgreSQL 16 bin directory)")
    return found


def libpq_target(url: str) -> tuple[str, dict[str, str]]:
    """A libpq conninfo string for one of our ``postgresql://`` URLs (``?unix_sock=`` included) and
    the environment that carries its password (never on the command line)."""
    parts = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    fields: dict[str, str] = {
        "user": unquote(parts.username or "postgres"),
        "dbname": (parts.path or "/").lstrip("/") or "postgres",
    }
    if "unix_sock" in query:
        sock = Path(query["unix_sock"])
        fields["host"] = str(sock.parent)
        fields["port"] = sock.name.rsplit(".", 1)[-1] if sock.name.startswith(".s.PGSQL.") else "5432"
    else:
        fields["host"] = parts.hostname or "127.0.0.1"
        fields["port"] = str(parts.port or 5432)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)

    def quote(value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    return " ".join(f"{k}={quote(v)}" for k, v in fields.items()), env


def _run(args: list[str], env: dict[str, str], timeout_s: float) -> None:
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout_s, check=False)  # noqa: S603  # a fixed argument list of our own PostgreSQL tools, no shell
    if proc.returncode != 0:
        raise DrillError(f"{Path(args[0]).name} failed ({proc.returncode}): {proc.stderr.strip()[-1500:]}")


# --- facts and checks (shared with the clone drill) ------------------------------------------------------
def collect_facts(conn: Conn) -> dict[str, Any]:
    """Row count and newest created_at per table, migration version and money totals, as one dict."""
    sql = conn.value(FACTS_SQL)
    rows = conn.all(Query("drill_facts", sql, prepared=False)) if sql else []
    money = conn.one(MONEY) or {}
    newest = {r["table_name"]: r["newest"] for r in rows if r["newest"] is not None}
    newest.update({k: v for k, v in (conn.one(KEY_NEWEST) or {}).items() if v is not None})
    return {
        "counts": {r["table_name"]: int(r["n"]) for r in rows},
        "newest": newest,
        "migration_version": conn.value(MIGRATION_VERSION),
        "entries_total": int(money.get("entries_total") or 0),
        "available_total": int(money.get("available_total") or 0),
    }


def check_ledger(conn: Conn) -> dict[str, Any]:
    """ledger.verify over every user of the copy (problems capped at 20 rows each)."""
    report = ledger.verify(conn, max_rows=20)
    return {
        "ok": bool(report["ok"]),
        "entries": report["entries"],
        "balances": report["balances"],
        "chain_problems": report["chain_problems"],
        "balance_problems": report["balance_problems"],
    }


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def compare_facts(source: dict[str, Any], copy: dict[str, Any]) -> dict[str, Any]:
    """Exact comparison of two fact sets (the dump was taken in the source facts' snapshot)."""
    count_mismatches = [
        {"table": t, "source": source["counts"].get(t), "restored": copy["counts"].get(t)}
        for t in sorted(set(source["counts"]) | set(copy["counts"]))
        if source["counts"].get(t) != copy["counts"].get(t)
    ]
    newest_mismatches = [
        {"table": t, "source": _iso(source["newest"].get(t)), "restored": _iso(copy["newest"].get(t))}
        for t in sorted(set(source["newest"]) | set(copy["newest"]))
        if source["newest"].get(t) != copy["newest"].get(t)
    ]
    return {
        "row_counts": {
            "ok": not count_mismatches,
            "tables": len(source["counts"]),
            "rows": sum(source["counts"].values()),
            "mismatches": count_mismatches,
        },
        "newest": {
            "ok": not newest_mismatches,
            **{t: _iso(copy["newest"].get(t)) for t in KEY_TABLES},
            "mismatches": newest_mismatches,
        },
        "migration_version": {
            "ok": source["migration_version"] == copy["migration_version"],
            "source": source["migration_version"],
            "restored": copy["migration_version"],
        },
        "money": {
            "ok": (source["entries_total"], source["available_total"]) == (copy["entries_total"], copy["available_total"]),
            "entries_total": copy["entries_total"],
            "available_total": copy["available_total"],
        },
    }


# --- the local drill ---------------------------------------------------------------------------------------
def _connect(url: str, settings: Settings) -> Conn:
    return Conn(_session_setup(connect_url(url), settings), settings)


def _admin_exec(server_url: str, sql: str, settings: Settings) -> None:
    conn = _connect(with_database(server_url, "postgres"), settings)
    try:
        conn.script(sql)
    finally:
        conn.raw.close()


def dump_restore_drill(source_url: str, settings: Settings, *, jobs: int = 2, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Dumps ``source_url``'s database, restores it into a scratch database, checks it, drops it.

    Returns the report (``ok`` says whether every check passed) and records it in restore_drills;
    raises DrillError when the drill itself could not run. ``source_url`` must be allowed to
    CREATE DATABASE and read every table (locally: the owner/superuser URL, ``admin_url``).
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(name: str, since: float) -> float:
        now = time.perf_counter()
        timings[name] = round((now - since) * 1000, 1)
        return now

    pg_dump, pg_restore = pg_bin("pg_dump"), pg_bin("pg_restore")
    source = _connect(source_url, settings)
    drill_id: int | None = None
    try:
        source_db = str(source.value(DATABASE_NAME))
        scratch = f"{source_db[:40]}_drill_{secrets.token_hex(4)}"
        source.execute(ABANDON_DRILLS)
        drill_id = int(source.value(OPEN_DRILL, source=source_db, target=scratch))
        scratch_url = with_database(source_url, scratch)
        dropped = False
        try:
            with tempfile.TemporaryDirectory(prefix="earnpay-drill-") as tmp:
                dump_file = Path(tmp) / "dump.pgc"
                t = time.perf_counter()
                # The facts and the dump share one snapshot: the copy must match them exactly.
                source.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                try:
                    source.script("SET LOCAL statement_timeout = 0")
                    snapshot = str(source.value(EXPORT_SNAPSHOT))
                    expected = collect_facts(source)
                    conninfo, env = libpq_target(source_url)
                    _run(
                        [pg_dump, "--format=custom", f"--snapshot={snapshot}", "--file", str(dump_file), "--dbname", conninfo],
                        env,
                        timeout_s,
                    )
                finally:
                    source.script("COMMIT")
                t = lap("dump", t)
                dump_bytes = dump_file.stat().st_size
                _admin_exec(source_url, f'CREATE DATABASE "{scratch}" TEMPLATE template0', settings)
                s_conninfo, s_env = libpq_target(scratch_url)
                _run([pg_restore, "--exit-on-error", f"--jobs={max(1, jobs)}", "--dbname", s_conninfo, str(dump_file)], s_env, timeout_s)
                t = lap("restore", t)
            copy = _connect(scratch_url, settings)
            try:
                copy.script("SET statement_timeout = 0")
                checks = {"ledger": check_ledger(copy), **compare_facts(expected, collect_facts(copy))}
            finally:
                copy.raw.close()
            lap("checks", t)
        finally:
            t = time.perf_counter()
            try:
                _admin_exec(source_url, f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)', settings)
                dropped = True
            except Exception:  # never mask the drill's own outcome; the report names what to drop by hand
                log.exception("could not drop scratch database %s", scratch, extra={"event": "restore_drill_cleanup_failed"})
            lap("drop", t)
        timings["total"] = round((time.perf_counter() - started) * 1000, 1)
        failed = [name for name, check in checks.items() if not check["ok"]]
        report = {
            "ok": not failed,
            "mode": "dump_restore",
            "source": source_db,
            "scratch": scratch,
            "scratch_dropped": dropped,
            "dump_bytes": dump_bytes,
            "timings_ms": timings,
            "failed_checks": failed,
            "checks": checks,
        }
        _close(source, drill_id, "done" if report["ok"] else "failed", bool(report["ok"]), report, None)
        return report
    except BaseException as exc:
        if drill_id is not None:
            try:
                _close(source, drill_id, "failed", False, None, str(exc)[:2000])
            except Exception:
                log.debug("could not record the failed drill", exc_info=True)
        raise
    finally:
        source.raw.close()


def _close(conn: Conn, drill_id: int, phase: str, ok: bool, report: dict[str, Any] | None, error: str | None) -> None:
    conn.execute(CLOSE_DRILL, id=drill_id, phase=phase, ok=ok, report=dumps(report) if report is not None else None, error=error)
