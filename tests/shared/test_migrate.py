"""The migration runner: order, one transaction per file, checksums, the advisory lock."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from shared.db import Conn, Query
from shared.migrate import MigrationError, discover, migrate


def _write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, sql in files.items():
        (d / name).write_text(sql)
    return d


TABLES = Query(
    "t_tables",
    "SELECT string_agg(tablename, ',' ORDER BY tablename) FROM pg_tables WHERE schemaname = 'public'",
    prepared=False,
)


def test_applies_in_order_once_and_records_checksums(scratch: Any, tmp_path: Path) -> None:
    files = {"0002_b.sql": "CREATE TABLE b (a_id INT REFERENCES a (id));", "0001_a.sql": "CREATE TABLE a (id INT PRIMARY KEY);"}
    d = _write(tmp_path / "m", files)
    conn = scratch()
    assert migrate(conn, d) == [1, 2]
    assert migrate(conn, d) == []
    assert conn.value(TABLES) == "a,b,schema_migrations"


def test_a_failing_file_leaves_nothing_behind(scratch: Any, tmp_path: Path) -> None:
    files = {"0001_ok.sql": "CREATE TABLE ok (id INT);", "0002_bad.sql": "CREATE TABLE half (id INT); SELECT 1/0;"}
    d = _write(tmp_path / "m", files)
    conn = scratch()
    with pytest.raises(Exception, match="division by zero"):
        migrate(conn, d)
    assert conn.value(TABLES) == "ok,schema_migrations"
    assert conn.value(Query("t_versions", "SELECT max(version) FROM schema_migrations", prepared=False)) == 1


def test_an_edited_applied_file_is_refused(scratch: Any, tmp_path: Path) -> None:
    d = _write(tmp_path / "m", {"0001_a.sql": "CREATE TABLE a (id INT);"})
    conn = scratch()
    migrate(conn, d)
    (d / "0001_a.sql").write_text("CREATE TABLE a (id BIGINT);")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrate(conn, d)


def test_bad_names_and_duplicate_versions_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError):
        discover(_write(tmp_path / "x", {"1_a.sql": "SELECT 1;"}))
    with pytest.raises(MigrationError):
        discover(_write(tmp_path / "y", {"0001_a.sql": "SELECT 1;", "0001_b.sql": "SELECT 1;"}))


def test_concurrent_migrators_apply_each_file_once(scratch: Any, tmp_path: Path) -> None:
    d = _write(tmp_path / "m", {"0001_slow.sql": "SELECT pg_sleep(0.3); CREATE TABLE once (id INT);"})
    results: list[list[int]] = []
    errors: list[BaseException] = []
    conns = [scratch(), scratch()]

    def run(conn: Conn) -> None:
        try:
            results.append(migrate(conn, d))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [[], [1]]


def test_the_real_migrations_are_well_formed() -> None:
    migrations = discover()
    assert migrations and migrations[0].version == 1
    for m in migrations:
        assert "TIMESTAMP " not in m.sql.upper().replace("TIMESTAMPTZ", ""), f"{m.name}: use TIMESTAMPTZ"
