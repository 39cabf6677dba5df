"""SQL functions with one current file each (shared/sql/functions): applied by the migrator when they
change, and tested here directly in SQL."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Any, get_args

import pytest
from pg8000.exceptions import DatabaseError

from functions.ledger.service import CREDIT_TYPES, ENTRY_TYPES, SYSTEM_ENTRY_TYPES, EntryType
from functions.videos.service import required_seconds
from shared.db import EP_AUDIT_APPEND_ONLY, EP_INSUFFICIENT_FUNDS, EP_PAYOUT_EVENTS_APPEND_ONLY, Conn, Query, sqlstate
from shared.migrate import FUNCTIONS_DIR, discover, migrate, sql_functions
from shared.models import format_micros

RECORDED = Query("t_sql_functions", "SELECT name, checksum FROM sql_functions", prepared=False)
CALL_F = Query("t_call_f", "SELECT f() AS v", prepared=False)


def test_every_function_file_is_applied_with_its_checksum(owner_conn: Conn) -> None:
    files = sql_functions()
    assert "format_micros" in files
    recorded = {row["name"]: row["checksum"] for row in owner_conn.all(RECORDED)}
    for name, sql in files.items():
        assert f"CREATE OR REPLACE FUNCTION {name}(" in sql, name
        assert sql.count("CREATE OR REPLACE FUNCTION") == 1, f"{name}.sql holds one function"
        assert recorded.get(name) == hashlib.sha256(sql.encode()).hexdigest(), name


def _files(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (directory / name).write_text(sql)
    return directory


def _f(value: int) -> str:
    return f"CREATE OR REPLACE FUNCTION f() RETURNS INTEGER LANGUAGE sql IMMUTABLE AS $$ SELECT {value} $$;"


def test_a_changed_file_is_applied_again_and_its_body_outlives_a_migration(scratch: Any, tmp_path: Path) -> None:
    migrations = _files(tmp_path / "m", {"0001_make_f.sql": _f(1)})
    functions = _files(tmp_path / "f", {"f.sql": _f(2)})
    conn = scratch()
    assert migrate(conn, migrations, functions) == [1]
    assert conn.value(CALL_F) == 2  # the file, not the migration, holds the current body
    (functions / "f.sql").write_text(_f(3))
    assert migrate(conn, migrations, functions) == []
    assert conn.value(CALL_F) == 3  # changed: applied again without a migration
    _files(migrations, {"0002_old_body.sql": _f(9)})
    assert migrate(conn, migrations, functions) == [2]
    assert conn.value(CALL_F) == 3  # a migration never leaves an older body in place


@pytest.mark.parametrize(
    "micros",
    [0, 1, 2_500, 10_000, 1_500_000, 1_234_567, 999_999, 999_999_999, 1_000_000_000, 1_000_000_000_000, -1, -2_500, -1_234_567],
)
def test_format_micros_in_sql_is_the_python_rule(owner_conn: Conn, micros: int) -> None:
    sql = owner_conn.value(Query("t_format_micros", "SELECT format_micros(CAST(:m AS bigint))", prepared=False), m=micros)
    assert sql == format_micros(micros)


def _sqlstate_of(owner_conn: Conn, statement: str) -> str | None:
    """Runs ``statement`` in a transaction that is always rolled back; its SQLSTATE, or None if it ran."""
    owner_conn.raw.execute_simple("BEGIN")
    try:
        owner_conn.execute(Query("t_refused", statement, prepared=False))
        return None
    except DatabaseError as exc:
        return sqlstate(exc)
    finally:
        owner_conn.raw.execute_simple("ROLLBACK")


def test_the_append_only_functions_refuse_in_sql(owner_conn: Conn) -> None:
    assert _sqlstate_of(owner_conn, "TRUNCATE payout_events") == EP_PAYOUT_EVENTS_APPEND_ONLY
    assert _sqlstate_of(owner_conn, "TRUNCATE audit_log") == EP_AUDIT_APPEND_ONLY


def test_function_files_live_in_one_folder() -> None:
    assert FUNCTIONS_DIR.is_dir()
    assert sorted(p.stem for p in FUNCTIONS_DIR.glob("*.sql")) == sorted(sql_functions())


def _last_migration_named_in(sql: str) -> int:
    """The newest migration a function file's header names ("first made by ..., last changed by ...")."""
    header = sql.split("\n", 1)[0]
    versions = [int(v) for v in re.findall(r"\b(\d{4})_[a-z0-9_]+\.sql", header)]
    return max(versions, default=0)


def test_no_later_migration_redefines_a_function_that_has_a_file() -> None:
    later: list[str] = []
    for name, sql in sql_functions().items():
        newest = _last_migration_named_in(sql)
        for mig in discover():
            if mig.version > newest and re.search(rf"CREATE (OR REPLACE )?FUNCTION {name}\(", mig.sql):
                later.append(f"{mig.version:04d}_{mig.name} redefines {name}: change shared/sql/functions/{name}.sql instead")
    assert later == []


def test_every_function_a_migration_defines_has_a_file() -> None:
    files = sql_functions()
    defined = {
        f"{name} ({mig.version:04d}_{mig.name})"
        for mig in discover()
        for name in re.findall(r"CREATE (?:OR REPLACE )?FUNCTION (\w+)\(", mig.sql, flags=re.IGNORECASE)
        if name not in files
    }
    assert defined == set()  # its current body goes to shared/sql/functions/<name>.sql


def test_ledger_post_in_sql(api: Any, owner_conn: Conn) -> None:
    user = api.signup()
    post = Query(
        "t_ledger_post_sql",
        "SELECT entry_id, entry_balance_after, duplicate FROM ledger_post(CAST(:u AS uuid), 'adjustment', CAST(:a AS bigint), :k, 'test')",
        prepared=False,
    )
    first = owner_conn.one(post, u=user.id, a=5_000, k="sql-direct-1")
    assert first is not None
    assert first["duplicate"] is False
    again = owner_conn.one(post, u=user.id, a=5_000, k="sql-direct-1")
    assert again == {**first, "duplicate": True}  # the same key: the first entry, not a second one
    assert _sqlstate_of(owner_conn, f"SELECT * FROM ledger_post('{user.id}', 'adjustment', -10000000, 'sql-direct-2', 'test')") == (
        EP_INSUFFICIENT_FUNDS
    )


def test_required_seconds_in_sql_is_the_python_rule(owner_conn: Conn) -> None:
    rows = owner_conn.all(
        Query(
            "t_required_grid",
            """SELECT d, p, video_required_seconds(d, p) AS s
                 FROM generate_series(1, 14400, 7) AS d, generate_series(1, 100) AS p""",
            prepared=False,
        )
    )
    assert len(rows) > 200_000
    wrong = [(r["d"], r["p"], r["s"]) for r in rows if r["s"] != required_seconds(r["d"], r["p"])]
    assert wrong == []


def test_entry_types_agree_with_the_schema(owner_conn: Conn) -> None:
    check = owner_conn.value(
        Query("t_type_check", "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'earnings_type_check'", prepared=False)
    )
    assert set(re.findall(r"'([a-z_]+)'", check)) == set(get_args(EntryType)) == ENTRY_TYPES | SYSTEM_ENTRY_TYPES
    earning = owner_conn.value(
        Query(
            "t_earning_types",
            "SELECT array_agg(t ORDER BY t) FROM unnest(CAST(:names AS text[])) AS t WHERE ledger_is_earning(t)",
            prepared=False,
        ),
        names=sorted(get_args(EntryType)),
    )
    assert set(earning) == CREDIT_TYPES


def _q(name: str, sql: str) -> Query:
    return Query(name, sql, prepared=False)


class _RolledBack:
    """Statements in one transaction that is always rolled back (the test database keeps nothing)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    def __enter__(self) -> Conn:
        self.conn.raw.execute_simple("BEGIN")
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.raw.execute_simple("ROLLBACK")


@pytest.mark.parametrize(
    ("entry_type", "amount", "pending", "deltas", "recovery"),
    [
        ("video_reward", 700, False, (0, 700, 0), 0),
        ("video_reward", 700, True, (700, 0, 0), 0),
        ("clearing", 700, False, (-700, 700, 0), 0),
        ("reversal", -700, False, (-700, 0, 0), 0),
        ("payout_hold", -700, False, (0, -700, 700), 0),
        ("payout_release", 700, False, (0, 700, -700), 0),
        ("payout_paid", -700, False, (0, 0, -700), 0),
        ("adjustment", -700, False, (0, -700, 0), 0),
        ("recovery", -700, False, (0, 0, 0), 700),
        ("recovery_payment", -700, False, (0, -700, 0), -700),
    ],
)
def test_bucket_deltas_in_sql(
    owner_conn: Conn, entry_type: str, amount: int, pending: bool, deltas: tuple[int, int, int], recovery: int
) -> None:
    row = owner_conn.one(
        _q(
            "t_bucket_deltas",
            """SELECT d.d_pending, d.d_available, d.d_held, ledger_recovery_delta(:t, CAST(:a AS bigint)) AS d_recovery
                 FROM ledger_bucket_deltas(:t, CAST(:a AS bigint), CAST(:p AS boolean)) d""",
        ),
        t=entry_type,
        a=amount,
        p=pending,
    )
    assert row is not None
    assert (row["d_pending"], row["d_available"], row["d_held"]) == deltas
    assert row["d_recovery"] == recovery


BUCKETS = _q("t_buckets", "SELECT available, pending, held, recovery, lifetime_earned FROM balances WHERE user_id = CAST(:u AS uuid)")
APPEND = _q(
    "t_append",
    """SELECT entry_id, duplicate FROM ledger_append(CAST(:u AS uuid), :t, CAST(:a AS bigint), :k, 'test', NULL, NULL,
                                                    clock_timestamp() - CAST(:ago AS interval), NULL, NULL)""",
)


def test_append_clear_due_and_recover_in_sql(api: Any, owner_conn: Conn) -> None:
    user = api.signup()
    with _RolledBack(owner_conn) as conn:
        first = conn.one(APPEND, u=user.id, t="video_reward", a=1_000, k="sql-append-1", ago="1 second")
        assert first is not None and first["duplicate"] is False
        assert conn.one(APPEND, u=user.id, t="video_reward", a=1_000, k="sql-append-1", ago="1 second") == {**first, "duplicate": True}
        assert conn.one(BUCKETS, u=user.id) == {"available": 0, "pending": 1_000, "held": 0, "recovery": 0, "lifetime_earned": 1_000}
        assert conn.value(_q("t_clear", "SELECT ledger_clear_due(100000, clock_timestamp())")) >= 1
        assert conn.one(BUCKETS, u=user.id) == {"available": 1_000, "pending": 0, "held": 0, "recovery": 0, "lifetime_earned": 1_000}
        recover = _q(
            "t_recover",
            "SELECT recovered, reversed_amount, duplicate FROM ledger_recover(CAST(:u AS uuid), CAST(:e AS bigint), 'test', NULL)",
        )
        assert conn.one(recover, u=user.id, e=first["entry_id"]) == {"recovered": True, "reversed_amount": 1_000, "duplicate": False}
        assert conn.one(recover, u=user.id, e=first["entry_id"]) == {"recovered": True, "reversed_amount": 1_000, "duplicate": True}
        assert conn.one(BUCKETS, u=user.id) == {"available": 1_000, "pending": 0, "held": 0, "recovery": 1_000, "lifetime_earned": 0}
        # the next clearing pays what is owed first: a 'recovery_payment' out of what just became available
        conn.one(APPEND, u=user.id, t="video_reward", a=600, k="sql-append-2", ago="1 second")
        conn.value(_q("t_clear", "SELECT ledger_clear_due(100000, clock_timestamp())"))
        assert conn.one(BUCKETS, u=user.id) == {"available": 1_000, "pending": 0, "held": 0, "recovery": 400, "lifetime_earned": 600}
    # only a credit can be pending; no bucket may go negative
    debit = f"SELECT * FROM ledger_append('{user.id}', 'adjustment', -5, 'sql-append-3', 'test', NULL, NULL, clock_timestamp(), NULL, NULL)"
    assert _sqlstate_of(owner_conn, debit) == "EP005"
    assert _sqlstate_of(owner_conn, debit.replace("clock_timestamp()", "NULL")) == EP_INSUFFICIENT_FUNDS


@pytest.mark.parametrize(
    ("email", "canonical"),
    [
        ("A.B+x@GoogleMail.com", "ab@gmail.com"),
        ("a.b+x@outlook.com", "a.b@outlook.com"),
        ("a.b+x@example.com", "a.b+x@example.com"),
    ],
)
def test_canonical_email_in_sql(owner_conn: Conn, email: str, canonical: str) -> None:
    assert owner_conn.value(_q("t_canonical", "SELECT ep_canonical_email(:e)"), e=email) == canonical


def test_trigger_functions_in_sql(api: Any, owner_conn: Conn) -> None:
    user, other = api.signup(), api.signup()
    profile = _q("t_profile", "SELECT profile_version, canonical_email FROM users WHERE id = CAST(:u AS uuid)")
    catalogue = _q("t_catalogue", "SELECT version FROM cache_versions WHERE name = 'catalogue'")
    linked = _q("t_linked", "SELECT ep_risk_linked(CAST(:a AS uuid), CAST(:b AS uuid))")
    with _RolledBack(owner_conn) as conn:
        before = conn.one(profile, u=user.id)
        assert before is not None
        conn.execute(_q("t_same", "UPDATE users SET display_name = display_name WHERE id = CAST(:u AS uuid)"), u=user.id)
        assert conn.one(profile, u=user.id) == before  # nothing changed: no new version
        local = user.id.replace("-", "")
        conn.execute(_q("t_email", "UPDATE users SET email = :e WHERE id = CAST(:u AS uuid)"), u=user.id, e=f"x.{local}+tag@gmail.com")
        assert conn.one(profile, u=user.id) == {"profile_version": before["profile_version"] + 1, "canonical_email": f"x{local}@gmail.com"}
        version = conn.value(catalogue)
        conn.execute(_q("t_videos", "UPDATE videos SET title = title WHERE false"))
        assert conn.value(catalogue) == version + 1  # statement level: even a statement that changes no row
        assert conn.value(linked, a=user.id, b=other.id) is False
        observe = _q(
            "t_observe", "INSERT INTO risk_observations (user_id, kind, device_hash) VALUES (CAST(:u AS uuid), 'login', sha256('d'::bytea))"
        )
        conn.execute(observe, u=user.id)
        conn.execute(observe, u=other.id)
        assert conn.value(linked, a=user.id, b=other.id) is True
