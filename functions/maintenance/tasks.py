"""The maintenance tasks themselves. Each takes the task's own connection (the schema owner's, in
autocommit: no BEGIN unless a task asks for one), its parsed options and the settings, and returns
a JSON-able dict that ``service.run_task`` logs as the task's one report line."""

from __future__ import annotations

import time
from typing import Any

from pg8000.exceptions import DatabaseError
from pydantic import BaseModel, ConfigDict, Field

from functions.earnings import bonuses
from functions.ledger import service as ledger
from functions.maintenance import queries as q
from shared.config import Settings
from shared.db import LOCK_NOT_AVAILABLE, QUERY_CANCELED, Conn, Query, get_db, get_read_db, sqlstate
from shared.logs import get_logger

log = get_logger(__name__)


# Indexes that churn: updated sessions and counters, inserted-then-purged keys and attempts, the
# ledger's per-user b-trees (random inserts split pages), and tables other areas add when present.
HOT_TABLES = (
    "sessions",
    "rate_limits",
    "idempotency_keys",
    "login_attempts",
    "balances",
    "earnings",
    "users",
    "video_progress",
    "payout_requests",
    "outbox",
    "dead_letters",
)


class Options(BaseModel):
    """A task's options: the message's other fields. Unknown or mistyped fields are refused."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TableOptions(Options):
    tables: list[str] | None = Field(None, max_length=200, description="only these tables (default: all / the hot ones)")
    lock_timeout_ms: int = Field(10_000, ge=100, le=600_000)
    time_budget_s: int = Field(420, ge=1, le=3600, description="start no new table after this long")


class PurgeOptions(Options):
    session_days: int = Field(30, ge=1, le=3650, description="keep dead sessions this long (investigations)")
    login_attempt_days: int = Field(90, ge=1, le=3650)
    idempotency_key_days: int = Field(7, ge=1, le=365)
    outbox_days: int = Field(7, ge=1, le=365, description="published outbox events older than this (shared.outbox.prune)")
    batch_size: int = Field(5_000, ge=1, le=50_000)
    time_budget_s: int = Field(300, ge=1, le=3600)


class ReconcileOptions(Options):
    max_rows: int = Field(100, ge=1, le=10_000, description="problem rows reported per check")


class SweepOptions(Options):
    limit: int = Field(500, ge=1, le=100_000)


class ClearingOptions(Options):
    batch_size: int | None = Field(None, ge=1, le=50_000, description="entries per transaction (default CLEARING_BATCH_SIZE)")
    time_budget_s: int = Field(240, ge=1, le=3600, description="start no new batch after this long")


class RiskScanOptions(Options):
    limit: int = Field(5_000, ge=1, le=100_000, description="new observations (and completions) read per run")


class PartnerSecretsOptions(Options):
    limit: int = Field(100, ge=1, le=10_000, description="retired versions disabled per run")


class DrillOptions(Options):
    force: bool = False
    minutes_ago: int = Field(60, ge=5, le=7 * 24 * 60, description="clone drill: the point in time, this long ago")


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def _pick_tables(conn: Conn, wanted: list[str] | None, default: tuple[str, ...] | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The existing top-level tables to work on, and the asked-for names that do not exist."""
    existing = {t["name"]: t for t in conn.all(q.TABLES)}
    names = wanted if wanted is not None else (list(default) if default is not None else sorted(existing))
    return [existing[n] for n in names if n in existing], [n for n in names if n not in existing and wanted is not None]


# --- analyze -------------------------------------------------------------------------------------------
def analyze(conn: Conn, opts: TableOptions, settings: Settings) -> dict[str, Any]:
    """ANALYZE every table (partitioned parents too: autovacuum never does those)."""
    tables, unknown = _pick_tables(conn, opts.tables, None)
    conn.script(f"SET statement_timeout = 0; SET lock_timeout = {int(opts.lock_timeout_ms)}")
    started = time.perf_counter()
    done: list[str] = []
    skipped: list[dict[str, str]] = []
    for t in tables:
        if time.perf_counter() - started > opts.time_budget_s:
            skipped.append({"table": t["name"], "reason": "time_budget"})
            continue
        try:
            conn.script(f"ANALYZE {t['qualified']}")
            done.append(t["name"])
        except DatabaseError as exc:
            if sqlstate(exc) not in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
                raise
            skipped.append({"table": t["name"], "reason": "lock_timeout"})
    return {"analyzed": done, "skipped": skipped, "unknown": unknown}


# --- reindex -------------------------------------------------------------------------------------------
def reindex(conn: Conn, opts: TableOptions, settings: Settings) -> dict[str, Any]:
    """REINDEX TABLE CONCURRENTLY of the hot tables, partition by partition, within a time budget.

    CONCURRENTLY cannot run in a transaction block: the task's connection is in autocommit and
    never BEGINs. An interrupted run leaves invalid ``*_ccnew`` indexes; each run drops those first.
    """
    tables, unknown = _pick_tables(conn, opts.tables, HOT_TABLES)
    conn.script(f"SET statement_timeout = 0; SET lock_timeout = {int(opts.lock_timeout_ms)}")
    dropped = _drop_leftovers(conn)
    started = time.perf_counter()
    done: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    remaining: list[str] = []
    for t in tables:
        for leaf in conn.all(q.REINDEX_TARGETS, table=t["name"], qualified=t["qualified"]):
            if time.perf_counter() - started > opts.time_budget_s:
                remaining.append(leaf["name"])
                continue
            t0 = time.perf_counter()
            try:
                conn.script(f"REINDEX TABLE CONCURRENTLY {leaf['qualified']}")
            except DatabaseError as exc:
                if sqlstate(exc) not in (LOCK_NOT_AVAILABLE, QUERY_CANCELED):
                    raise
                skipped.append({"table": leaf["name"], "reason": "lock_timeout"})
                continue
            after = int(conn.value(q.INDEX_BYTES, qualified=leaf["qualified"]) or 0)
            done.append({"table": leaf["name"], "index_bytes_before": int(leaf["index_bytes"]), "index_bytes_after": after, "ms": _ms(t0)})
    dropped += _drop_leftovers(conn)
    return {
        "reindexed": len(done),
        "index_bytes_before": sum(d["index_bytes_before"] for d in done),
        "index_bytes_after": sum(d["index_bytes_after"] for d in done),
        "tables": done,
        "skipped": skipped,
        "remaining": remaining,
        "dropped_invalid_indexes": dropped,
        "unknown": unknown,
    }


def _drop_leftovers(conn: Conn) -> list[str]:
    names = [r["qualified"] for r in conn.all(q.LEFTOVER_INDEXES)]
    for name in names:
        conn.script(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")
    return names


# --- session purge ----------------------------------------------------------------------------------------
def session_purge(conn: Conn, opts: PurgeOptions, settings: Settings) -> dict[str, Any]:
    """Deletes dead sessions, old login attempts, old idempotency keys and stale rate-limit counters,
    one bounded batch per statement (each its own short transaction), within a time budget."""
    plan: list[tuple[str, Query, dict[str, Any]]] = [
        ("sessions", q.PURGE_SESSIONS, {"days": opts.session_days}),
        ("login_attempts", q.PURGE_LOGIN_ATTEMPTS, {"days": opts.login_attempt_days}),
        ("idempotency_keys", q.PURGE_IDEMPOTENCY_KEYS, {"days": opts.idempotency_key_days}),
        ("rate_limits", q.PURGE_RATE_LIMITS, {}),
    ]
    started = time.perf_counter()
    deleted: dict[str, int] = {}
    unfinished: list[str] = []
    for name, query, params in plan:
        deleted[name] = 0
        while True:
            if time.perf_counter() - started > opts.time_budget_s:
                unfinished.append(name)
                break
            n = conn.execute(query, batch=opts.batch_size, **params)
            deleted[name] += n
            if n < opts.batch_size:
                break
    from shared import outbox

    deleted["outbox"] = outbox.prune(get_db(), older_than_days=opts.outbox_days, limit=opts.batch_size * 10)
    return {"deleted": deleted, "unfinished": unfinished}


# --- reconcile --------------------------------------------------------------------------------------------
def reconcile(conn: Conn, opts: ReconcileOptions, settings: Settings) -> dict[str, Any]:
    """Checks the ledger's invariants on the read replica (the primary when there is none)."""
    with get_read_db().connection() as read:
        return check_ledger_invariants(read, max_rows=opts.max_rows)


def check_ledger_invariants(conn: Conn, *, max_rows: int = 100, own_snapshot: bool = True) -> dict[str, Any]:
    """Every chain, balance = sum of entries (count, newest hash), lifetime earned = sum of earnings,
    nothing negative. Logs ERROR ``ledger_reconciliation_failed`` on any break, INFO with the counts
    otherwise. With ``own_snapshot`` (a connection outside any transaction) every check reads one
    REPEATABLE READ snapshot; without it, the checks run in the caller's open transaction."""
    started = time.perf_counter()
    own = own_snapshot
    if own:
        conn.script("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET LOCAL statement_timeout = '15min'")
    try:
        report = ledger.verify(conn, max_rows=max_rows)
        lifetime = conn.all(q.LIFETIME_PROBLEMS, max_rows=max_rows)
        negatives = conn.one(q.NEGATIVES) or {}
    finally:
        if own:
            conn.script("COMMIT")
    result = {
        "ok": bool(report["ok"]) and not lifetime and not any(negatives.values()),
        "entries": report["entries"],
        "balances": report["balances"],
        "chain_problems": len(report["chain_problems"]),
        "balance_problems": len(report["balance_problems"]),
        "lifetime_problems": len(lifetime),
        "payout_problems": len(report["payout_problems"]),
        "negative_balances": int(negatives.get("negative_balances") or 0),
        "negative_entries": int(negatives.get("negative_entries") or 0),
        "ms": _ms(started),
    }
    if result["ok"]:
        log.info(
            "ledger reconciled: %s entries, %s balances",
            result["entries"],
            result["balances"],
            extra={"event": "ledger_reconciled", **result},
        )
    else:
        log.error(
            "LEDGER RECONCILIATION FAILED: %s chain, %s balance, %s lifetime problems",
            result["chain_problems"],
            result["balance_problems"],
            result["lifetime_problems"],
            extra={
                "event": "ledger_reconciliation_failed",
                **result,
                # the first offenders, so the alert's log line is actionable on its own
                "examples": {
                    "chain": report["chain_problems"][:10],
                    "balance": report["balance_problems"][:10],
                    "lifetime": lifetime[:10],
                    "payout": report["payout_problems"][:10],
                },
            },
        )
    return result


# --- clearing ---------------------------------------------------------------------------------------------
def clearing(conn: Conn, opts: ClearingOptions, settings: Settings) -> dict[str, Any]:
    """Expires referrals past their window (reversing their pending rewards), then moves due pending
    credits to available (ledger_clear_due), one short transaction per batch.

    Each batch reads the due rows from the small ``pending_credits`` table by its clearing-time index
    and claims them with SKIP LOCKED, so a run costs the entries it clears, not the ledger's size, and
    two runs (or a clawback in progress) never touch the same row. Stops when a batch comes back
    short or the time budget is spent; the next tick carries on.
    """
    batch = opts.batch_size or settings.clearing_batch_size
    started = time.perf_counter()
    cleared = batches = 0
    budget_spent = False
    # Referrals past their window first: their pending rewards are reversed, never cleared.
    expired = {"expired": 0, "reversed": 0}
    while True:
        step = bonuses.expire_referrals(conn, limit=min(batch, 500))
        expired = {k: expired[k] + step[k] for k in expired}
        if step["expired"] < min(batch, 500) or time.perf_counter() - started > opts.time_budget_s:
            break
    while True:
        if time.perf_counter() - started > opts.time_budget_s:
            budget_spent = True
            break
        n = ledger.clear_due(conn, limit=batch)  # autocommit: the statement is the batch's transaction
        cleared += n
        batches += 1
        if n < batch:
            break
    return {
        "cleared": cleared,
        "batches": batches,
        "referrals_expired": expired["expired"],
        "rewards_reversed": expired["reversed"],
        "budget_spent": budget_spent,
        "ms": _ms(started),
    }


# --- outbox sweep -----------------------------------------------------------------------------------------
def outbox_sweep(conn: Conn, opts: SweepOptions, settings: Settings) -> dict[str, Any]:
    """Publishes outbox rows left behind by a crash between commit and publish (shared.outbox)."""
    from shared import outbox

    swept = outbox.sweep(get_db(), limit=opts.limit)
    return dict(swept) if isinstance(swept, dict) else {"swept": swept}


# --- trust and safety -------------------------------------------------------------------------------------
def risk_scan(conn: Conn, opts: RiskScanOptions, settings: Settings) -> dict[str, Any]:
    """The rules over the accounts with new observations or completions since the last run (functions/risk)."""
    from functions.risk import service as risk

    return risk.scan(conn, limit=opts.limit)


def partner_secrets_disable(conn: Conn, opts: PartnerSecretsOptions, settings: Settings) -> dict[str, Any]:
    """Disables in Secret Manager the offerwall secret versions whose rotation overlap is over (docs/partners.md)."""
    from functions.partners import service as partners

    return partners.disable_retired_secrets(conn, limit=opts.limit)


# --- restore drill ----------------------------------------------------------------------------------------
def restore_drill(conn: Conn, opts: DrillOptions, settings: Settings) -> dict[str, Any]:
    """Cloud SQL: advance the point-in-time clone drill; elsewhere: dump, restore and check locally."""
    if settings.is_production and settings.db_instance_connection_name:
        from functions.maintenance import clone_drill

        return clone_drill.advance(conn, settings, minutes_ago=opts.minutes_ago, force=opts.force)
    from functions.maintenance.restore import dump_restore_drill
    from shared.db import admin_url

    report = dump_restore_drill(admin_url(settings), settings)
    if not report["ok"]:
        log.error("restore drill FAILED: %s", report["failed_checks"], extra={"event": "restore_drill_failed", "report": report})
    return report
