"""PostgreSQL access with pg8000: connection factories, a pool, named queries and transactions.

Three ways to connect, chosen by configuration:
  * the embedded PostgreSQL (pgserver) for local runs and tests, when nothing else is configured;
  * a plain ``DATABASE_URL`` (``postgresql://user:pass@host:port/db`` or ``?unix_sock=/path``);
  * Cloud SQL through cloud-sql-python-connector with IAM database authentication (created lazily).

Every query is a named ``Query``; hot ones are prepared once per connection, so a call costs one
round trip. Queries slower than ``SLOW_QUERY_MS`` are logged as warnings with their name.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlparse

import pg8000.dbapi
import pg8000.native
from pg8000.converters import make_params
from pg8000.converters import timestamptz_in as pg8000_timestamptz_in
from pg8000.exceptions import DatabaseError, InterfaceError
from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import QueuePool

from shared import error_codes as codes
from shared import metrics, tracing
from shared.config import Settings, get_settings
from shared.errors import (
    AppError,
    IdempotencyConflict,
    InsufficientFunds,
    NotACredit,
    NotFound,
    NotPending,
    ServiceUnavailable,
    ValidationFailed,
)
from shared.lazy import Lazy
from shared.logs import get_logger

log = get_logger(__name__)
T = TypeVar("T")

# SQLSTATEs worth naming.
UNIQUE_VIOLATION = "23505"
CHECK_VIOLATION = "23514"
FOREIGN_KEY_VIOLATION = "23503"
SERIALIZATION_FAILURE = "40001"
DEADLOCK_DETECTED = "40P01"
RAISE_EXCEPTION = "P0001"
INSUFFICIENT_PRIVILEGE = "42501"
RETRYABLE = {SERIALIZATION_FAILURE, DEADLOCK_DETECTED}
QUERY_CANCELED = "57014"
LOCK_NOT_AVAILABLE = "55P03"
# The project's own SQLSTATEs, raised by its SQL functions and triggers (shared/migrations):
# EP0xx the ledger, EP02x payouts and the audit log, EP1xx watch progress.
EP_INSUFFICIENT_FUNDS = "EP001"  # ledger_post: the debit would overdraw the available balance
EP_UNKNOWN_USER = "EP002"  # ledger_post: no such user
EP_KEY_REUSED = "EP003"  # ledger_post: the idempotency key was used for a different entry
EP_PAID_OUT_NOT_POSITIVE = "EP004"  # a paid-out amount must be positive
EP_INVALID_ENTRY = "EP005"  # ledger_append and friends: an entry its type does not allow (the message says which)
EP_BUCKET_NEGATIVE = "EP006"  # the pending or held bucket would go negative (a release of more than is held)
EP_LEDGER_APPEND_ONLY = "EP010"  # the earnings ledger is append-only
EP_PAYOUT_TRANSITION = "EP020"  # an illegal payout state transition
EP_PAYOUT_EVENTS_APPEND_ONLY = "EP021"  # payout_events is append-only
EP_PAYOUT_IMMUTABLE = "EP022"  # a payout's owner, method and amount never change
EP_AUDIT_APPEND_ONLY = "EP025"  # the audit log is append-only
EP_UNKNOWN_ENTRY = "EP030"  # ledger_reverse: no such entry for this user
EP_NOT_PENDING = "EP031"  # ledger_reverse: the entry cleared (or was never pending)
EP_NOT_A_CREDIT = "EP032"  # ledger_recover: the entry is not a credit
EP_BANK_ACCOUNTS_WITHDRAWN = "EP090"  # no new bank-account method or payout to one (migration 0090)
EP_UNKNOWN_VIDEO = "EP101"  # record_heartbeat: no such video
EP_POSITION_OUT_OF_RANGE = "EP102"  # record_heartbeat: a position beyond the end of the video

# The one table from database errors to domain errors: SQLSTATE -> (error class, code, message; None:
# the database's own message, written for the client in the SQL function). The
# codes not listed (the invariants' EP004, EP010-EP025 and EP090 among them) are bugs of ours: they stay database
# errors, and the boundary answers 500 (or lets Pub/Sub retry). CHECK_VIOLATION is here for the
# ledger, whose CHECKs encode which amounts an entry type allows; callers name the states they expect.
DATABASE_ERRORS: dict[str, tuple[type[AppError], str, str | None]] = {
    EP_INSUFFICIENT_FUNDS: (InsufficientFunds, codes.INSUFFICIENT_FUNDS, "the available balance is too low for this"),
    EP_UNKNOWN_USER: (NotFound, codes.UNKNOWN_USER, "no such user"),
    EP_KEY_REUSED: (IdempotencyConflict, codes.IDEMPOTENCY_CONFLICT, "this idempotency key was already used for a different entry"),
    EP_INVALID_ENTRY: (ValidationFailed, codes.INVALID_ENTRY, None),
    EP_BUCKET_NEGATIVE: (ValidationFailed, codes.INVALID_ENTRY, "that entry would leave the pending or held bucket negative"),
    EP_UNKNOWN_ENTRY: (NotFound, codes.ENTRY_NOT_FOUND, "no such entry for this user"),
    EP_NOT_A_CREDIT: (NotACredit, codes.NOT_A_CREDIT, "this entry is not a credit, so there is nothing to take back"),
    EP_NOT_PENDING: (
        NotPending,
        codes.NOT_PENDING,
        "this entry is not pending: it cleared (or was never pending), so it cannot be reversed",
    ),
    EP_UNKNOWN_VIDEO: (NotFound, codes.VIDEO_NOT_FOUND, "no such video"),
    EP_POSITION_OUT_OF_RANGE: (ValidationFailed, codes.POSITION_OUT_OF_RANGE, "position_seconds is beyond the end of the video"),
    CHECK_VIOLATION: (ValidationFailed, codes.INVALID_ENTRY, "that entry is not allowed for its type"),
}
# The server went away or will not serve this session any more: class 08 (connection exception),
# admin/crash shutdown and "starting up" (57P01-57P03), too many connections and other resource
# exhaustion (class 53), and a session left on a node that turned read-only in a failover (25006).
_DISCONNECT_CLASSES = ("08", "53")
_DISCONNECT_STATES = {"57P01", "57P02", "57P03", "25006"}


def is_disconnect(exc: BaseException) -> bool:
    """True when ``exc`` means the connection (or the server behind it) is gone: the pool must drop it."""
    if isinstance(exc, (InterfaceError, OSError)):
        return True
    code = sqlstate(exc)
    return code is not None and (code[:2] in _DISCONNECT_CLASSES or code in _DISCONNECT_STATES)


def unavailable(exc: BaseException) -> ServiceUnavailable | None:
    """The 503 a database failure in the middle of a request becomes (None for the errors a caller
    caused or must handle itself: constraint violations, our own RAISEs, bugs in SQL)."""
    if is_disconnect(exc):
        return ServiceUnavailable("the database is unavailable; try again shortly", code=codes.DATABASE_UNAVAILABLE)
    code = sqlstate(exc)
    if code in RETRYABLE or code == QUERY_CANCELED:
        return ServiceUnavailable("the database is busy; try again shortly", code=codes.DATABASE_BUSY)
    return None


def domain_error(exc: BaseException, expected: Collection[str], details: dict[str, Any] | None = None) -> AppError | None:
    """The domain error ``DATABASE_ERRORS`` maps ``exc`` to, if its SQLSTATE is one of ``expected``
    (the states the caller's statement can raise by design); None otherwise (re-raise ``exc``)."""
    code = sqlstate(exc)
    if code is None or code not in expected or code not in DATABASE_ERRORS:
        return None
    error, error_code, message = DATABASE_ERRORS[code]
    if message is None:
        fields = exc.args[0] if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict) else {}
        message = str(fields.get("M") or "invalid entry")
    return error(message, code=error_code, details=details)


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a pg8000 database error, or None."""
    if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        code = exc.args[0].get("C")
        return str(code) if code else None
    return None


def constraint_name(exc: BaseException) -> str | None:
    """The constraint a pg8000 error names (``n`` field), or None."""
    if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        name = exc.args[0].get("n")
        return str(name) if name else None
    return None


@dataclass(frozen=True)
class Query:
    """One named SQL statement with ``:name`` placeholders; ``prepared`` ones are parsed once per connection."""

    name: str
    sql: str
    prepared: bool = True
    table: str | None = None  # the metrics' table attribute when the first table named is not the one that matters
    statement: str = field(init=False, repr=False, compare=False)
    make_vals: Callable[[dict[str, Any]], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        statement, make_vals = pg8000.native.to_statement(self.sql)
        object.__setattr__(self, "statement", statement)
        object.__setattr__(self, "make_vals", make_vals)


def retrying(run: Callable[[], T], attempts: int = 5) -> T:
    """Runs ``run`` (one whole transaction) again after a serialization failure or a deadlock, up to
    ``attempts`` times with a short, growing pause: the one retry loop (``run_in_transaction``)."""
    for attempt in range(1, attempts + 1):
        try:
            return run()
        except (DatabaseError, ServiceUnavailable) as exc:
            cause = exc.__cause__ if isinstance(exc, ServiceUnavailable) else exc
            if cause is not None and sqlstate(cause) in RETRYABLE and attempt < attempts:
                time.sleep(0.005 * attempt)
                continue
            raise
    raise AssertionError("unreachable")


class Conn:
    """A checked-out connection: run named queries, get rows as dicts."""

    def __init__(self, raw: Any, settings: Settings, db: Database | None = None) -> None:
        self.raw = raw
        self.db = db  # the pool it came from (None for a connection opened outside one)
        self._slow_ms = settings.slow_query_ms
        cache = getattr(raw, "_earnpay_prepared", None)
        if cache is None:
            cache = {}
            raw._earnpay_prepared = cache
        self._prepared: dict[str, tuple[bytes, Any, Any]] = cache

    def _execute(self, q: Query, params: dict[str, Any]) -> Any:
        vals = q.make_vals(params) if params or "$" in q.statement else ()
        if q.prepared:
            ps = self._prepared.get(q.statement)
            if ps is None:
                ps = self.raw.prepare_statement(q.statement, ())
                self._prepared[q.statement] = ps
            name_bin, cols, input_funcs = ps
            return self.raw.execute_named(name_bin, make_params(self.raw.py_types, vals), cols, input_funcs, q.statement)
        if vals:
            return self.raw.execute_unnamed(q.statement, vals)
        return self.raw.execute_simple(q.statement)

    def _run(self, q: Query, params: dict[str, Any]) -> Any:
        started = time.perf_counter()
        traced = tracing.current()  # the request's span when it is traced (shared/tracing.py); else None
        if traced is None:
            ctx = self._execute(q, params)
        else:
            start_ns = time.time_ns()
            table = q.table or metrics.table_of(q.sql)
            try:
                ctx = self._execute(q, params)
            except BaseException as exc:
                tracing.query(traced, q.name, table, start_ns, exc)
                raise
            tracing.query(traced, q.name, table, start_ns)
        elapsed_ms = (time.perf_counter() - started) * 1000
        metrics.query_finished(q.name, q.table or q.sql, elapsed_ms)
        if elapsed_ms > self._slow_ms:
            log.warning(
                "slow query %s took %.0f ms", q.name, elapsed_ms, extra={"event": "slow_query", "query": q.name, "ms": round(elapsed_ms, 1)}
            )
        return ctx

    def all(self, q: Query, **params: Any) -> list[dict[str, Any]]:
        """Every row, each a dict keyed by column name."""
        ctx = self._run(q, params)
        if not ctx.columns or ctx.rows is None:
            return []
        names = [c["name"] for c in ctx.columns]
        return [dict(zip(names, row, strict=True)) for row in ctx.rows]

    def one(self, q: Query, **params: Any) -> dict[str, Any] | None:
        """The first row as a dict, or None."""
        rows = self.all(q, **params)
        return rows[0] if rows else None

    def value(self, q: Query, **params: Any) -> Any:
        """The first column of the first row, or None."""
        ctx = self._run(q, params)
        return ctx.rows[0][0] if ctx.rows else None

    def rows(self, q: Query, **params: Any) -> list[list[Any]]:
        """Every row as a list of values (no dict building: for bulk reads)."""
        ctx = self._run(q, params)
        return ctx.rows or []

    def execute(self, q: Query, **params: Any) -> int:
        """Runs a statement and returns the affected row count."""
        ctx = self._run(q, params)
        return int(ctx.row_count) if ctx.row_count is not None else 0

    def script(self, sql: str) -> None:
        """Runs SQL text with no parameters (may hold several statements): migrations and set-up only."""
        self.raw.execute_simple(sql)

    @property
    def in_transaction(self) -> bool:
        """True inside BEGIN ... COMMIT (from the server's ReadyForQuery status, as pg8000 tracks it)."""
        return bool(self.raw._in_transaction)

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """BEGIN ... COMMIT, or ROLLBACK when the block raises."""
        self.raw.execute_simple("BEGIN")
        try:
            yield self
        except BaseException:
            self._rollback_quietly()
            raise
        self.raw.execute_simple("COMMIT")

    def run_in_transaction(self, fn: Callable[[Conn], T], *, attempts: int = 5) -> T:
        """Runs ``fn`` in a transaction on this connection, retrying on serialization failures and deadlocks."""

        def once() -> T:
            with self.transaction():
                return fn(self)

        return retrying(once, attempts)

    @contextmanager
    def atomic(self) -> Iterator[Conn]:
        """Joins the caller's transaction when one is open, else runs the block in its own."""
        if self.in_transaction:
            yield self
            return
        with self.transaction():
            yield self

    def _rollback_quietly(self) -> None:
        try:
            self.raw.execute_simple("ROLLBACK")
        except Exception:  # the connection is broken: the pool will discard it
            log.debug("rollback failed", exc_info=True)


# --- connection factories -------------------------------------------------------------------------
TIMESTAMPTZ_OID = 1184


def timestamptz_in(text: str) -> Any:
    """pg8000's reader for timestamptz text, ~60x faster: ``datetime.fromisoformat`` (C) reads what
    PostgreSQL writes ("2026-12-07 02:31:28.1234+00"); anything it cannot read (infinity, years
    past 9999, BC) goes to pg8000's own reader, so the values are the same either way."""
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return pg8000_timestamptz_in(text)


def _session_setup(raw: Any, settings: Settings) -> Any:
    raw.autocommit = True  # we issue BEGIN/COMMIT ourselves
    raw.register_in_adapter(TIMESTAMPTZ_OID, timestamptz_in)
    raw.execute_simple(
        f"SET statement_timeout = {int(settings.db_statement_timeout_ms)}; "
        "SET idle_in_transaction_session_timeout = 60000; SET TIME ZONE 'UTC'"
    )
    return raw


def connect_url(url: str, **overrides: Any) -> Any:
    """A pg8000 dbapi connection from a ``postgresql://`` URL (``?unix_sock=`` for a socket)."""
    parts = urlparse(url)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    kwargs: dict[str, Any] = {
        "user": unquote(parts.username or "postgres"),
        "password": unquote(parts.password) if parts.password else None,
        "database": (parts.path or "/").lstrip("/") or "postgres",
        "application_name": "earnpay",
    }
    if "unix_sock" in query:
        kwargs["unix_sock"] = query["unix_sock"]
    else:
        kwargs["host"] = parts.hostname or "127.0.0.1"
        kwargs["port"] = parts.port or 5432
    kwargs.update(overrides)
    return pg8000.dbapi.connect(**kwargs)


def with_database(url: str, database: str, user: str | None = None) -> str:
    """The same server URL pointed at another database (and optionally another user)."""
    parts = urlparse(url)
    netloc = parts.netloc
    if user is not None:
        host = netloc.rsplit("@", 1)[-1]
        netloc = f"{user}@{host}"
    return parts._replace(path="/" + database, netloc=netloc).geturl()


def _make_connector() -> Any:
    from google.cloud.sql.connector import Connector

    return Connector(refresh_strategy="lazy")


# One Connector per process, made on first use (constructing it looks up Google credentials).
_connector: Lazy[Any] = Lazy(_make_connector)


def _cloud_sql_connector() -> Any:
    return _connector.get()


APP_ROLE = "earnpay_app"


def admin_url(settings: Settings) -> str:
    """The schema owner's URL: MIGRATE_DATABASE_URL, DATABASE_URL, or the embedded server's superuser."""
    if settings.migrate_database_url or settings.database_url:
        return str(settings.migrate_database_url or settings.database_url)
    if settings.is_production:
        raise RuntimeError("production never falls back to the embedded database")
    from shared.embedded import embedded_url

    return with_database(embedded_url(settings), settings.db_name)


def app_url(settings: Settings) -> str:
    """The functions' URL: DATABASE_URL, or the embedded server as the application role."""
    if settings.database_url:
        return settings.database_url
    if settings.is_production:
        raise RuntimeError("production never falls back to the embedded database")
    from shared.embedded import embedded_url

    return with_database(embedded_url(settings), settings.db_name, user=APP_ROLE)


def connection_factory(settings: Settings, *, replica: bool = False, admin: bool = False) -> Callable[[], Any]:
    """A zero-argument function that opens one new, set-up pg8000 connection."""
    if settings.db_instance_connection_name and not settings.database_url:
        instance = settings.db_instance_connection_name
        if replica and settings.db_replica_connection_name:
            instance = settings.db_replica_connection_name

        def cloud_sql() -> Any:
            raw = _cloud_sql_connector().connect(
                instance,
                "pg8000",
                user=settings.db_iam_user,
                db=settings.db_name,
                enable_iam_auth=True,
                ip_type=settings.db_ip_type.lower(),
            )
            return _session_setup(raw, settings)

        return cloud_sql
    if replica and settings.replica_database_url:
        url = settings.replica_database_url
    else:
        url = admin_url(settings) if admin else app_url(settings)

    def plain() -> Any:
        return _session_setup(connect_url(url), settings)

    return plain


# --- the pool -------------------------------------------------------------------------------------
class Database:
    """A per-instance pool (SQLAlchemy's QueuePool over raw pg8000 connections) plus helpers."""

    def __init__(self, settings: Settings, *, replica: bool = False, admin: bool = False) -> None:
        self.settings = settings
        self._pool = QueuePool(
            connection_factory(settings, replica=replica, admin=admin),
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_pool_max_overflow,
            timeout=settings.db_pool_timeout_s,
            recycle=1800,
            reset_on_return="rollback",
        )
        ping_after = settings.db_ping_after_idle_s
        overflow = settings.db_pool_max_overflow
        metrics.register_pool(
            "replica" if replica else "admin" if admin else "primary", lambda: {**self.pool_status(), "max_overflow": overflow}
        )
        # When one connection turns out dead, the others of the same age probably are too (the server
        # restarted, a failover): every connection returned before that moment is pinged on checkout.
        self._disconnected_at = 0.0

        @event.listens_for(self._pool, "checkin")
        def _stamp(dbapi_conn: Any, record: Any) -> None:
            if record is not None:
                record.info["idle_since"] = time.monotonic()

        @event.listens_for(self._pool, "checkout")
        def _health_check(dbapi_conn: Any, record: Any, proxy: Any) -> None:
            idle_since = record.info.get("idle_since")
            if idle_since is None:
                return
            if time.monotonic() - idle_since < ping_after and idle_since > self._disconnected_at:
                return
            try:
                dbapi_conn.execute_simple("SELECT 1")
            except Exception as exc:  # a dead connection: the pool replaces it and retries
                raise DisconnectionError(str(exc)) from exc

    @contextmanager
    def connection(self) -> Iterator[Conn]:
        """A pooled connection for the block; returned (rolled back if needed) afterwards."""
        try:
            fairy = self._pool.connect()
        except PoolTimeout as exc:
            raise ServiceUnavailable("the database is busy; try again shortly", code=codes.DATABASE_BUSY) from exc
        except (InterfaceError, OSError, DatabaseError) as exc:
            log.error("database unavailable: %s", exc, extra={"event": "database_unavailable"})
            raise ServiceUnavailable("the database is unavailable; try again shortly", code=codes.DATABASE_UNAVAILABLE) from exc
        broken = False
        try:
            yield Conn(fairy.dbapi_connection, self.settings, self)
        except (InterfaceError, OSError, DatabaseError) as exc:
            # Every database failure in the middle of a request is a 503 (a dependency outage the
            # client may retry), never a 500; event handlers raise it, so Pub/Sub redelivers.
            broken = is_disconnect(exc)
            if broken:
                self._disconnected_at = time.monotonic()
                log.error("database connection lost: %s", exc, extra={"event": "database_disconnect"})
            mapped = unavailable(exc)
            if mapped is None:
                raise
            raise mapped from exc
        finally:
            if broken:
                fairy.invalidate()
            try:
                fairy.close()
            except Exception:  # returning a dead connection: it is discarded either way
                log.debug("could not return a connection to the pool", exc_info=True)

    @contextmanager
    def spare_connection(self) -> Iterator[Conn | None]:
        """Another connection for a read split across connections (the export's halves), or None when
        taking one could wait or grow the pool past its size: only an idle connection, or a new one while
        the pool is below ``DB_POOL_SIZE``. The caller then does the work on the connection it has."""
        p = self._pool
        if p.checkedin() == 0 and p.checkedout() >= p.size():
            yield None
            return
        with self.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[Conn]:
        """A pooled connection inside one transaction."""
        with self.connection() as conn, conn.transaction():
            yield conn

    def run_in_transaction(self, fn: Callable[[Conn], T], *, attempts: int = 5) -> T:
        """Runs ``fn`` in a transaction on a pooled connection, retrying on serialization failures and deadlocks."""

        def once() -> T:
            with self.transaction() as conn:
                return fn(conn)

        return retrying(once, attempts)

    def pool_status(self) -> dict[str, int]:
        p = self._pool
        return {"size": p.size(), "checked_out": p.checkedout(), "idle": p.checkedin(), "overflow": max(0, p.overflow())}

    def dispose(self) -> None:
        self._pool.dispose()


_lock = threading.Lock()
_primary: Database | None = None
_replica: Database | None = None


def get_db() -> Database:
    """The process-wide primary pool, created on first use."""
    global _primary
    if _primary is None:
        with _lock:
            if _primary is None:
                _primary = Database(get_settings())
    return _primary


def get_read_db() -> Database:
    """A pool on the read replica for analytics and reports; the primary when no replica is configured."""
    global _replica
    settings = get_settings()
    if not (settings.replica_database_url or settings.db_replica_connection_name):
        return get_db()
    if _replica is None:
        with _lock:
            if _replica is None:
                _replica = Database(settings, replica=True)
    return _replica


def forget_pools() -> None:
    """Drops the process-wide pools WITHOUT closing their connections: for a forked child, whose
    inherited sockets belong to the parent (closing them politely would end the parent's sessions)."""
    global _primary, _replica
    with _lock:
        _primary = _replica = None


def reset_pools() -> None:
    """Closes the process-wide pools (tests and the CLI use it after changing settings)."""
    global _primary, _replica
    with _lock:
        for pool in (_primary, _replica):
            if pool is not None:
                pool.dispose()
        _primary = _replica = None


# --- reads that may go to the replica -------------------------------------------------------------
# After a failure the replica is left alone for this long (every request would otherwise wait for it).
REPLICA_RETRY_AFTER_S = 5.0
_replica_down_until = 0.0

# The replica's replay lag in seconds: 0 when it has applied everything it received.
REPLICA_LAG = Query(
    "replica_lag",
    """SELECT CASE WHEN NOT pg_is_in_recovery() OR pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0
                   ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END AS lag_s""",
)


def replica_configured() -> bool:
    settings = get_settings()
    return bool(settings.replica_database_url or settings.db_replica_connection_name)


def read_replica(fn: Callable[[Conn], T], *, fresh: Callable[[T], bool] | None = None, max_lag_s: float | None = None) -> T:
    """Runs the read ``fn`` on the replica when one is configured and usable, else on the primary.

    Falls back to the primary when the replica is unreachable or fails (then skipped for
    ``REPLICA_RETRY_AFTER_S``), when it lags more than ``max_lag_s``, or when ``fresh(result)`` says the
    result misses something the primary already has (read-your-writes checks of the caller). A result
    from the replica is never returned unless it passed those checks."""
    global _replica_down_until
    if replica_configured() and time.monotonic() >= _replica_down_until:
        try:
            with get_read_db().connection() as conn:
                lag = float(conn.value(REPLICA_LAG) or 0) if max_lag_s is not None else 0.0
                result = fn(conn) if max_lag_s is None or lag <= max_lag_s else None
            if result is not None and (fresh is None or fresh(result)):
                metrics.replica_read("replica")
                return result
            metrics.replica_read("fallback_lag")
            log.info("replica behind; read from the primary", extra={"event": "replica_lagging"})
        except (ServiceUnavailable, InterfaceError, OSError, DatabaseError) as exc:
            _replica_down_until = time.monotonic() + REPLICA_RETRY_AFTER_S
            metrics.replica_read("fallback_error")
            log.warning("replica read failed, using the primary: %s", exc, extra={"event": "replica_unavailable"})
    with get_db().connection() as conn:
        return fn(conn)


def forget_replica_failure() -> None:
    """Lets the next read try the replica again at once (tests)."""
    global _replica_down_until
    _replica_down_until = 0.0
