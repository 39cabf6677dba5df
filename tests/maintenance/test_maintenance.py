"""Maintenance tasks against the real test database: each runs and reports in one log line, a
second concurrent run skips, reconciliation shouts on a broken ledger, bad messages dead-letter,
and the restore drill restores, verifies and prints its report."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from functions.ledger import service as ledger
from functions.maintenance import clone_drill, commands, events, restore, service, tasks
from shared.db import Query, get_db
from tests.helpers import Api


def _post(user_id: str, amount: int) -> None:
    with get_db().transaction() as conn:
        ledger.post(conn, user_id=user_id, type="video_reward", amount=amount, idempotency_key=uuid.uuid4().hex, source="test")


def _task_lines(caplog: pytest.LogCaptureFixture, task: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "maintenance_task" and getattr(r, "task", None) == task]


@pytest.fixture()
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.INFO)
    yield caplog


def _exec(conn: Any, sql: str, **params: Any) -> Any:
    return conn.all(Query("t_maint", sql, prepared=False), **params)


# --- every task runs and reports ------------------------------------------------------------------------------
def test_analyze_runs_every_table_and_reports_one_line(logs: pytest.LogCaptureFixture) -> None:
    outcome = service.run_task("analyze")
    assert outcome["ran"]
    analyzed = outcome["result"]["analyzed"]
    assert {"earnings", "users", "sessions", "balances"} <= set(analyzed)
    assert "earnings_p00" not in analyzed  # partitions are reached through their parent
    (line,) = _task_lines(logs, "analyze")
    assert line.result == outcome["result"] and line.ms > 0  # type: ignore[attr-defined]


def test_reindex_rebuilds_hot_tables_partition_by_partition(logs: pytest.LogCaptureFixture, owner_conn: Any) -> None:
    outcome = service.run_task("reindex")
    assert outcome["ran"], outcome
    result = outcome["result"]
    rebuilt = {t["table"] for t in result["tables"]}
    assert {f"earnings_p{i:02d}" for i in range(16)} <= rebuilt
    assert {"sessions", "rate_limits", "balances", "outbox", "video_progress"} <= rebuilt
    assert result["skipped"] == [] and result["remaining"] == []
    # nothing invalid left behind by CONCURRENTLY
    assert _exec(owner_conn, "SELECT indexrelid::regclass::text AS name FROM pg_index WHERE NOT indisvalid") == []
    assert len(_task_lines(logs, "reindex")) == 1


def test_reindex_refuses_unknown_options() -> None:
    from shared.errors import PermanentEventError

    with pytest.raises(PermanentEventError) as exc:
        service.run_task("reindex", {"tables": "earnings"})  # not a list
    assert exc.value.code == "invalid_task_options"


def test_session_purge_deletes_only_what_is_old(api: Api, owner_conn: Any, logs: pytest.LogCaptureFixture) -> None:
    user = api.signup()
    marker = uuid.uuid4().hex
    _exec(
        owner_conn,
        """INSERT INTO sessions (user_id, token_hash, created_at, last_seen_at, idle_timeout, expires_at, revoked_at, user_agent)
           VALUES (CAST(:u AS uuid), sha256(convert_to(:m || 'old', 'UTF8')), now() - interval '60 days', now() - interval '59 days',
                   interval '1 day', now() - interval '40 days', NULL, :m),
                  (CAST(:u AS uuid), sha256(convert_to(:m || 'revoked', 'UTF8')), now() - interval '50 days', now() - interval '45 days',
                   interval '7 days', now() + interval '10 days', now() - interval '45 days', :m),
                  (CAST(:u AS uuid), sha256(convert_to(:m || 'recent', 'UTF8')), now() - interval '10 days', now() - interval '9 days',
                   interval '1 day', now() - interval '5 days', NULL, :m)
           RETURNING id""",
        u=user.id,
        m=marker,
    )
    _exec(
        owner_conn,
        """INSERT INTO login_attempts (email, user_id, succeeded, created_at)
           VALUES (:m, CAST(:u AS uuid), false, now() - interval '100 days'), (:m, CAST(:u AS uuid), true, now() - interval '10 days')
           RETURNING id""",
        u=user.id,
        m=marker,
    )
    _exec(
        owner_conn,
        """INSERT INTO idempotency_keys (user_id, key, request_hash, created_at)
           VALUES (CAST(:u AS uuid), :m || '-old', '\\x00', now() - interval '8 days'),
                  (CAST(:u AS uuid), :m || '-new', '\\x00', now() - interval '1 day')
           RETURNING key""",
        u=user.id,
        m=marker,
    )
    _exec(
        owner_conn,
        """INSERT INTO rate_limits (bucket, window_start, hits)
           VALUES (:m || '-stale', now() - interval '2 days', 3), (:m || '-live', now(), 1) RETURNING bucket""",
        m=marker,
    )

    outcome = service.run_task("session_purge", {"batch_size": 2})  # tiny batches: the loop must go round
    assert outcome["ran"]
    deleted = outcome["result"]["deleted"]
    assert deleted["sessions"] >= 2
    assert deleted["login_attempts"] >= 1
    assert deleted["idempotency_keys"] >= 1
    assert deleted["rate_limits"] >= 1
    assert "outbox" in deleted
    assert outcome["result"]["unfinished"] == []

    left = _exec(
        owner_conn, "SELECT token_hash = sha256(convert_to(:m || 'recent', 'UTF8')) AS recent FROM sessions WHERE user_agent = :m", m=marker
    )
    assert left == [{"recent": True}]
    assert _exec(owner_conn, "SELECT succeeded FROM login_attempts WHERE email = :m", m=marker) == [{"succeeded": True}]
    assert _exec(owner_conn, "SELECT key FROM idempotency_keys WHERE key LIKE :m || '%'", m=marker) == [{"key": f"{marker}-new"}]
    assert _exec(owner_conn, "SELECT bucket FROM rate_limits WHERE bucket LIKE :m || '%'", m=marker) == [{"bucket": f"{marker}-live"}]
    assert len(_task_lines(logs, "session_purge")) == 1


def test_reconcile_reports_counts_at_info(api: Api, logs: pytest.LogCaptureFixture) -> None:
    user = api.signup()
    _post(user.id, 1_234)
    outcome = service.run_task("reconcile")
    result = outcome["result"]
    assert outcome["ran"] and result["ok"], result
    assert result["entries"] >= 1 and result["balances"] >= 1
    assert [r for r in logs.records if getattr(r, "event", None) == "ledger_reconciled" and r.levelno == logging.INFO]
    assert not [r for r in logs.records if r.levelno >= logging.ERROR]


def test_outbox_sweep_runs(logs: pytest.LogCaptureFixture) -> None:
    outcome = service.run_task("outbox_sweep", {"limit": 10})
    assert outcome["ran"]
    assert {"published", "pending"} <= set(outcome["result"])
    assert len(_task_lines(logs, "outbox_sweep")) == 1


# --- concurrency ------------------------------------------------------------------------------------------------
def test_two_concurrent_runs_one_runs_one_skips(owner_conn: Any, logs: pytest.LogCaptureFixture) -> None:
    """The first run is made to wait inside ANALYZE (the test holds a conflicting table lock), so the
    second certainly starts while the first holds the task's advisory lock."""
    first: dict[str, Any] = {}
    with owner_conn.transaction():
        owner_conn.script("LOCK TABLE feature_flags IN SHARE UPDATE EXCLUSIVE MODE")
        worker = threading.Thread(
            target=lambda: first.update(service.run_task("analyze", {"tables": ["feature_flags"], "lock_timeout_ms": 30_000}))
        )
        worker.start()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            held = _exec(
                owner_conn,
                "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns AND objid = :key AND granted",
                ns=service.LOCK_NAMESPACE,
                key=service.TASKS["analyze"].lock_key,
            )
            if held[0]["n"]:
                break
            time.sleep(0.02)
        else:
            pytest.fail("the first run never took its lock")
        second = service.run_task("analyze", {"tables": ["feature_flags"]})
    worker.join(30)
    assert second == {**second, "ran": False, "result": {"skipped": "already running"}}
    assert first["ran"] and first["result"]["analyzed"] == ["feature_flags"]
    lines = _task_lines(logs, "analyze")
    assert sorted(r.getMessage() for r in lines) == ["maintenance task analyze done", "maintenance task analyze skipped: already running"]


# --- reconcile finds a broken ledger ------------------------------------------------------------------------------
def test_reconcile_logs_error_on_a_broken_chain(api: Api, owner_conn: Any, logs: pytest.LogCaptureFixture) -> None:
    user = api.signup()
    for amount in (100, 200, 300):
        _post(user.id, amount)
    with owner_conn.transaction():
        owner_conn.script("ALTER TABLE earnings DISABLE TRIGGER earnings_append_only")
        _exec(owner_conn, "UPDATE earnings SET amount = 250 WHERE user_id = CAST(:u AS uuid) AND seq = 2 RETURNING seq", u=user.id)
        result = tasks.check_ledger_invariants(owner_conn, own_snapshot=False)
        owner_conn.script("ROLLBACK; BEGIN")  # undo the tampering; leave a transaction for the context manager
    assert not result["ok"]
    assert result["chain_problems"] >= 1 and result["balance_problems"] >= 1 and result["lifetime_problems"] >= 1
    (err,) = [r for r in logs.records if getattr(r, "event", None) == "ledger_reconciliation_failed"]
    assert err.levelno == logging.ERROR
    assert any(p["user_id"] == user.id for p in err.examples["chain"])  # type: ignore[attr-defined]
    assert tasks.check_ledger_invariants(owner_conn)["ok"]  # and the rollback restored it


# --- bad messages are dead-lettered ----------------------------------------------------------------------------------
def _event(payload: Any) -> SimpleNamespace:
    message_id = f"m-{uuid.uuid4().hex}"
    data = base64.b64encode(json.dumps(payload).encode()).decode()
    return SimpleNamespace(data={"message": {"data": data, "messageId": message_id}}, message_id=message_id)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ({"task": "vacuum_full_everything"}, "unknown_task"),
        ({"not_a_task": 1}, "unknown_task"),
        ({"task": "session_purge", "batch_size": "lots"}, "invalid_task_options"),
        ({"task": "analyze", "drop": "everything"}, "invalid_task_options"),
    ],
)
def test_bad_messages_are_dead_lettered(owner_conn: Any, payload: dict[str, Any], code: str) -> None:
    event = _event(payload)
    events.run_maintenance(event)  # acknowledged: no exception, so Pub/Sub never retries it
    rows = _exec(owner_conn, "SELECT source, code FROM dead_letters WHERE message_id = :m", m=event.message_id)
    assert rows == [{"source": "run_maintenance", "code": code}]


def test_a_good_message_runs_its_task(owner_conn: Any, logs: pytest.LogCaptureFixture) -> None:
    event = _event({"task": "analyze", "tables": ["users"]})
    events.run_maintenance(event)
    assert _exec(owner_conn, "SELECT 1 AS x FROM dead_letters WHERE message_id = :m", m=event.message_id) == []
    (line,) = _task_lines(logs, "analyze")
    assert line.result["analyzed"] == ["users"]  # type: ignore[attr-defined]


def test_cli_runs_a_task_and_prints_its_outcome(capsys: pytest.CaptureFixture[str]) -> None:
    code = commands.cmd_maintenance(argparse.Namespace(task="reconcile", option=["max_rows=5"]))
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])  # the log lines come first
    assert code == 0 and printed["task"] == "reconcile" and printed["result"]["ok"]
    assert commands.cmd_maintenance(argparse.Namespace(task="reconcile", option=["max_rows=-1"])) == 2


# --- the restore drill --------------------------------------------------------------------------------------------------
def test_restore_drill_restores_verifies_and_prints_its_report(api: Api, owner_conn: Any, capsys: pytest.CaptureFixture[str]) -> None:
    user = api.signup()
    _post(user.id, 5_000)
    code = commands.cmd_restore_drill(argparse.Namespace(force=False))
    out = capsys.readouterr().out
    with capsys.disabled():
        print("\nrestore drill report:", out)
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["ok"], report
    checks = report["checks"]
    assert checks["ledger"]["ok"] and checks["ledger"]["entries"] >= 1
    assert checks["row_counts"]["ok"] and checks["row_counts"]["tables"] >= 20 and checks["row_counts"]["rows"] > 0
    assert checks["newest"]["ok"] and checks["newest"]["users"] and checks["newest"]["earnings"]
    assert checks["migration_version"]["ok"] and checks["migration_version"]["restored"] >= 32
    assert checks["money"]["ok"]
    assert set(report["timings_ms"]) == {"dump", "restore", "checks", "drop", "total"}
    assert report["scratch_dropped"]
    assert _exec(owner_conn, "SELECT 1 AS x FROM pg_database WHERE datname = :n", n=report["scratch"]) == []
    drill = _exec(owner_conn, "SELECT phase, ok FROM restore_drills WHERE target = :n", n=report["scratch"])
    assert drill == [{"phase": "done", "ok": True}]


def test_compare_facts_catches_a_copy_that_differs() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    source = {
        "counts": {"users": 3, "earnings_p00": 5},
        "newest": {"users": when},
        "migration_version": 32,
        "entries_total": 10,
        "available_total": 10,
    }
    copy = {**source, "counts": {"users": 3, "earnings_p00": 4}, "migration_version": 31}
    checks = restore.compare_facts(source, copy)
    assert not checks["row_counts"]["ok"] and checks["row_counts"]["mismatches"] == [{"table": "earnings_p00", "source": 5, "restored": 4}]
    assert not checks["migration_version"]["ok"] and checks["newest"]["ok"] and checks["money"]["ok"]


def test_libpq_target_handles_sockets_and_passwords() -> None:
    conninfo, env = restore.libpq_target("postgresql://postgres@localhost/db1?unix_sock=/tmp/x/.s.PGSQL.5433")
    assert conninfo == "user='postgres' dbname='db1' host='/tmp/x' port='5433'" and "PGPASSWORD" not in env
    conninfo, env = restore.libpq_target("postgresql://me:p%40ss@db.internal:6432/earnpay")
    assert conninfo == "user='me' dbname='earnpay' host='db.internal' port='6432'" and env["PGPASSWORD"] == "p@ss"


# --- the Cloud SQL clone drill: only the requests it builds (it cannot run here) -----------------------------------------
def test_clone_drill_builds_the_admin_api_requests() -> None:
    when = datetime(2026, 6, 15, 4, 0, 0, 123456, tzinfo=UTC)
    assert clone_drill.parse_connection_name("earnpay-prod:europe-west1:earnpay-production-pg16") == (
        "earnpay-prod",
        "europe-west1",
        "earnpay-production-pg16",
    )
    target = clone_drill.clone_name("earnpay-production-pg16", when)
    assert target == "earnpay-production-pg16-drill-202606150400"
    req = clone_drill.clone_request("earnpay-prod", "earnpay-production-pg16", target, when)
    assert req.method == "POST"
    assert req.url == "https://sqladmin.googleapis.com/v1/projects/earnpay-prod/instances/earnpay-production-pg16/clone"
    assert req.body == {
        "cloneContext": {"kind": "sql#cloneContext", "destinationInstanceName": target, "pointInTime": "2026-06-15T04:00:00.123Z"}
    }
    op = clone_drill.operation_request("earnpay-prod", "op-123")
    assert (op.method, op.url) == ("GET", "https://sqladmin.googleapis.com/v1/projects/earnpay-prod/operations/op-123")
    patch = clone_drill.allow_deletion_request("earnpay-prod", target)
    assert patch.method == "PATCH"
    assert patch.body == {"settings": {"deletionProtectionEnabled": False}}
    assert patch.url.endswith(f"/projects/earnpay-prod/instances/{target}")
    delete = clone_drill.delete_request("earnpay-prod", target)
    assert (delete.method, delete.body) == ("DELETE", None)
    assert delete.url == patch.url
    with pytest.raises(ValueError):
        clone_drill.parse_connection_name("just-an-instance")
    for build in (clone_drill.delete_request, clone_drill.allow_deletion_request):
        with pytest.raises(ValueError, match="not a restore-drill clone"):
            build("earnpay-prod", "earnpay-production-pg16")  # the primary itself: never
