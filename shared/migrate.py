"""Numbered plain-SQL migrations: applied in order, one transaction each, under an advisory lock.

Each applied file is recorded with its SHA-256; a recorded file whose text changed since is refused,
so history cannot be rewritten silently. Files are written expand/contract style (docs/migrations.md).

SQL functions have one current file each, ``shared/sql/functions/<name>.sql`` (``CREATE OR REPLACE``):
after the migrations, a file is applied again whenever its SHA-256 differs from the one recorded in
``sql_functions``, or whenever a migration ran (a migration must not leave an older body in place).
A function's rule is therefore read in one file, not by reading the migrations in order.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from shared.db import Conn, Query
from shared.logs import get_logger

log = get_logger(__name__)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
FUNCTIONS_DIR = Path(__file__).resolve().parent / "sql" / "functions"
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
# An arbitrary constant: every migrator in every instance takes the same lock.
ADVISORY_LOCK_KEY = 7_310_451_001


class MigrationError(RuntimeError):
    """A migration file is malformed, duplicated or was edited after it was applied."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


CREATE_TABLE = Query(
    "create_schema_migrations",
    """CREATE TABLE IF NOT EXISTS schema_migrations (
        version    INTEGER PRIMARY KEY,
        name       TEXT NOT NULL,
        checksum   TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    prepared=False,
)
LOCK = Query("migrations_lock", f"SELECT pg_advisory_lock({ADVISORY_LOCK_KEY})", prepared=False)
UNLOCK = Query("migrations_unlock", f"SELECT pg_advisory_unlock({ADVISORY_LOCK_KEY})", prepared=False)
APPLIED = Query("migrations_applied", "SELECT version, name, checksum FROM schema_migrations ORDER BY version", prepared=False)
RECORD = Query(
    "migrations_record",
    "INSERT INTO schema_migrations (version, name, checksum) VALUES (:version, :name, :checksum)",
    prepared=False,
)
CREATE_FUNCTIONS_TABLE = Query(
    "create_sql_functions",
    """CREATE TABLE IF NOT EXISTS sql_functions (
        name       TEXT PRIMARY KEY,
        checksum   TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
    )""",
    prepared=False,
)
FUNCTIONS_APPLIED = Query("sql_functions_applied", "SELECT name, checksum FROM sql_functions", prepared=False)
RECORD_FUNCTION = Query(
    "sql_functions_record",
    """INSERT INTO sql_functions (name, checksum) VALUES (:name, :checksum)
       ON CONFLICT (name) DO UPDATE SET checksum = EXCLUDED.checksum, applied_at = now()""",
    prepared=False,
)
CURRENT_VERSION = Query("migrations_current", "SELECT max(version) FROM schema_migrations", prepared=False)


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every migration file in version order; refuses gaps in naming and duplicate versions."""
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"migration file name must be NNNN_snake_case.sql: {path.name}")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"two migrations share version {version}")
        found[version] = Migration(version, m.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def sql_functions(directory: Path = FUNCTIONS_DIR) -> dict[str, str]:
    """Function name (the file's stem) -> the file's SQL, for every current function file."""
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        if not re.fullmatch(r"[a-z][a-z0-9_]*", path.stem):
            raise MigrationError(f"function file name must be snake_case.sql: {path.name}")
        found[path.stem] = path.read_text()
    return found


def _apply_functions(conn: Conn, directory: Path, *, migrations_ran: bool) -> list[str]:
    """Applies each function file whose checksum changed (every one after a migration ran); returns their names."""
    conn.execute(CREATE_FUNCTIONS_TABLE)
    recorded = {row["name"]: row["checksum"] for row in conn.all(FUNCTIONS_APPLIED)}
    done: list[str] = []
    for name, sql in sql_functions(directory).items():
        checksum = hashlib.sha256(sql.encode()).hexdigest()
        if recorded.get(name) == checksum and not migrations_ran:
            continue
        with conn.transaction():
            conn.script(sql)
            conn.execute(RECORD_FUNCTION, name=name, checksum=checksum)
        if recorded.get(name) != checksum:
            log.info("applied SQL function %s", name, extra={"event": "sql_function_applied", "function": name})
        done.append(name)
    return done


def migrate(conn: Conn, directory: Path = MIGRATIONS_DIR, functions: Path | None = None) -> list[int]:
    """Applies every pending migration, then the function files (``functions``: FUNCTIONS_DIR when
    ``directory`` is the real migrations, else none unless given); returns the versions applied now."""
    functions = functions if functions is not None else (FUNCTIONS_DIR if directory == MIGRATIONS_DIR else None)
    migrations = discover(directory)
    conn.value(LOCK)  # before CREATE TABLE IF NOT EXISTS, which races with itself
    try:
        conn.execute(CREATE_TABLE)
        applied = {row["version"]: row for row in conn.all(APPLIED)}
        for mig in migrations:
            row = applied.get(mig.version)
            if row is not None and row["checksum"] != mig.checksum:
                raise MigrationError(
                    f"migration {mig.version:04d}_{mig.name} was edited after it was applied; write a new migration instead"
                )
        done: list[int] = []
        for mig in migrations:
            if mig.version in applied:
                continue
            with conn.transaction():
                conn.script(mig.sql)
                conn.execute(RECORD, version=mig.version, name=mig.name, checksum=mig.checksum)
            log.info("applied migration %04d_%s", mig.version, mig.name, extra={"event": "migration_applied", "version": mig.version})
            done.append(mig.version)
        if functions is not None:
            _apply_functions(conn, functions, migrations_ran=bool(done))
        return done
    finally:
        conn.value(UNLOCK)


def current_version(conn: Conn) -> int | None:
    """The newest applied migration version (None before the first)."""
    return conn.value(CURRENT_VERSION)
