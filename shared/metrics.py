"""The product document's key metrics as OpenTelemetry metrics, exported without a background thread.

What is measured (names are a contract with infra/monitoring.tf's dashboard and alert policies):

  earnpay.db.pool.utilisation      gauge, checked-out / capacity of each pool (attribute ``pool``)
  earnpay.db.query.duration        histogram ms, attributes ``query`` (Query.name) and ``table``
  earnpay.http.request.duration    histogram ms, attributes ``function``, ``route``, ``status_class``
  earnpay.sessions.active          gauge, user sessions seen in the last 5 minutes (one COUNT per export)
  earnpay.heartbeats               counter, attribute ``status`` (accepted, credited, stale, ...)
  earnpay.heartbeats.rejected      counter, attribute ``reason`` (the error code: video_not_found, ...)
  earnpay.watch.reported_seconds   counter, seconds a playing heartbeat claims (the client's cadence)
  earnpay.watch.credited_seconds   counter, seconds the server credited; credited / reported is the
                                   watch-time tracking accuracy the dashboard plots
  earnpay.credits                  counter, ledger credits applied (attribute ``outcome``)
  earnpay.db.replica.reads         counter, reads meant for the replica by ``outcome`` (replica,
                                   fallback_lag, fallback_error: served by the primary instead)

Why no PeriodicExportingMetricReader: it starts a thread, and a Cloud Function's CPU is throttled
between requests, so a timer thread would export late or never, and functions here start no
threads. Instead ``RequestEndReader`` collects and exports from the request that finishes at least
``METRICS_EXPORT_INTERVAL_S`` after the previous export (default 60 s, Cloud Monitoring's
recommended minimum per time series). The cost is one export call (a few ms to Cloud Monitoring)
added to one request per instance per interval; an instance that stops getting requests keeps at
most one interval of unexported data (cumulative counters: the next export carries it).

Exporters: ``gcp`` (Cloud Monitoring, production), ``file`` (JSON lines at ``METRICS_FILE``: local
development and tests read it), ``none`` (the default outside production: instruments are no-ops).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterable
from functools import lru_cache
from pathlib import Path
from typing import Any

from shared.config import get_settings
from shared.lazy import Lazy
from shared.logs import get_logger

log = get_logger(__name__)

_pool_sources: list[tuple[str, Callable[[], dict[str, int]]]] = []
_active_sessions_source: Callable[[], int | None] | None = None

_TABLE = re.compile(r"\b(?:FROM|INTO|UPDATE|JOIN)\s+(?:ONLY\s+)?([a-z_][a-z0-9_]*)(?:\s*\()?", re.IGNORECASE)
_SKIP = {"lateral", "unnest", "jsonb_to_recordset", "generate_series", "select"}


@lru_cache(maxsize=2048)
def table_of(sql: str) -> str:
    """The first table (or SQL function) a statement names after FROM/INTO/UPDATE/JOIN: the ``table`` attribute."""
    for m in _TABLE.finditer(sql):
        name = m.group(1).lower()
        if name not in _SKIP:
            return name
    return "none"


class _FileExporter:
    """Writes each collection as JSON lines: one line per data point (local development and tests)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, data: Any, **kwargs: Any) -> None:
        lines = []
        for rm in data.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.data.data_points:
                        row: dict[str, Any] = {"name": metric.name, "attributes": dict(point.attributes or {})}
                        if hasattr(point, "sum") and hasattr(point, "bucket_counts"):
                            row.update(count=point.count, sum=point.sum, max=point.max)
                        else:
                            row["value"] = point.value
                        lines.append(json.dumps(row, default=str))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write("".join(line + "\n" for line in lines))


def _make_reader(exporter: Any) -> Any:
    from opentelemetry.sdk.metrics.export import MetricReader

    class RequestEndReader(MetricReader):
        """A pull reader: ``export_now`` collects and hands the data to the exporter, on the caller's thread."""

        def __init__(self) -> None:
            super().__init__()
            self._exporter = exporter

        def _receive_metrics(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> None:
            if metrics_data is not None:
                self._exporter.export(metrics_data, timeout_millis=timeout_millis)

        def export_now(self) -> None:
            self.collect()

        def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
            return None

    return RequestEndReader()


class Cadence:
    """Exports at most once per ``interval_s``, from whichever request of the instance gets there first
    (on its thread: no timer thread); an export that fails is logged, never raised. Metrics and
    traces (shared/tracing.py) both export this way."""

    def __init__(self, interval_s: float, what: str) -> None:
        self.interval_s = interval_s
        self.what = what
        self.last_export = time.monotonic()
        self._lock = threading.Lock()

    def run(self, export: Callable[[], bool], *, force: bool = False) -> bool:
        """``export()`` now if forced or the interval has passed; its answer (False when skipped or failed)."""
        now = time.monotonic()
        if not force and now - self.last_export < self.interval_s:
            return False
        if not self._lock.acquire(blocking=False):  # another request of this instance is exporting
            return False
        try:
            self.last_export = now
            return export()
        except Exception:  # telemetry never fails a request
            log.warning("%s export failed", self.what, exc_info=True, extra={"event": f"{self.what}_export_failed"})
            return False
        finally:
            self._lock.release()


class _Metrics:
    def __init__(self, exporter: Any, interval_s: float) -> None:
        from opentelemetry.metrics import CallbackOptions, Observation
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.resources import Resource

        settings = get_settings()
        self.reader = _make_reader(exporter)
        self.cadence = Cadence(interval_s, "metrics")
        resource = Resource.create({"service.name": settings.k_service or "earnpay-local", "deployment.environment": settings.env})
        self.provider = MeterProvider(metric_readers=[self.reader], resource=resource)
        meter = self.provider.get_meter("earnpay")

        def pools(options: CallbackOptions) -> Iterable[Observation]:
            for name, status in list(_pool_sources):
                try:
                    s = status()
                except Exception:  # a disposed pool: nothing to report
                    log.debug("pool status failed", exc_info=True)
                    continue
                capacity = max(1, s["size"] + s.get("max_overflow", 0))
                yield Observation(s["checked_out"] / capacity, {"pool": name})

        def sessions(options: CallbackOptions) -> Iterable[Observation]:
            if _active_sessions_source is None:
                return
            try:
                n = _active_sessions_source()
            except Exception:
                log.debug("active sessions count failed", exc_info=True)
                return
            if n is not None:
                yield Observation(n)

        meter.create_observable_gauge("earnpay.db.pool.utilisation", [pools], unit="1", description="checked-out / pool capacity")
        meter.create_observable_gauge("earnpay.sessions.active", [sessions], unit="{session}", description="sessions seen in 5 min")
        self.query_ms = meter.create_histogram("earnpay.db.query.duration", unit="ms", description="query time by table and query")
        self.request_ms = meter.create_histogram("earnpay.http.request.duration", unit="ms", description="request time by route")
        self.heartbeats = meter.create_counter("earnpay.heartbeats", unit="{heartbeat}", description="heartbeats by status")
        self.rejected = meter.create_counter("earnpay.heartbeats.rejected", unit="{heartbeat}", description="rejected heartbeats by reason")
        self.reported = meter.create_counter("earnpay.watch.reported_seconds", unit="s", description="watch seconds claimed")
        self.credited = meter.create_counter("earnpay.watch.credited_seconds", unit="s", description="watch seconds credited")
        self.credits = meter.create_counter("earnpay.credits", unit="{credit}", description="ledger credits by outcome")
        self.replica_reads = meter.create_counter("earnpay.db.replica.reads", unit="{read}", description="replica reads by outcome")

    def maybe_export(self, *, force: bool = False) -> bool:
        def export() -> bool:
            self.reader.export_now()
            return True

        return self.cadence.run(export, force=force)


def _build() -> _Metrics | None:
    settings = get_settings()
    kind = settings.metrics_exporter or ("gcp" if settings.is_production else "none")
    if kind == "none":
        return None
    if kind == "file":
        exporter: Any = _FileExporter(Path(settings.metrics_file))
    else:
        from opentelemetry.exporter.cloud_monitoring import CloudMonitoringMetricsExporter

        exporter = CloudMonitoringMetricsExporter(project_id=settings.gcp_project, add_unique_identifier=True)
    return _Metrics(exporter, settings.metrics_export_interval_s)


# Decided once per process (until reset): metrics that are off cost a flag test per call, not a lock.
_provider: Lazy[_Metrics | None] = Lazy(_build)
_get = _provider.get


def reset() -> None:
    """Forgets the provider (tests and forked workers after changing settings)."""
    _provider.reset()


def enabled() -> bool:
    return _get() is not None


# --- sources registered by shared/ modules (shared.db registers its pools) ------------------------
def register_pool(name: str, status: Callable[[], dict[str, int]]) -> None:
    _pool_sources[:] = [(n, s) for n, s in _pool_sources if n != name]
    _pool_sources.append((name, status))


def set_active_sessions_source(source: Callable[[], int | None]) -> None:
    global _active_sessions_source
    _active_sessions_source = source


# --- recording --------------------------------------------------------------------------------------
def query_finished(name: str, table_or_sql: str, ms: float) -> None:
    """Records a query's time; ``table_or_sql`` is the table's name or the statement to find it in."""
    m = _get()
    if m is not None:
        table = table_or_sql if table_or_sql.isidentifier() else table_of(table_or_sql)
        m.query_ms.record(ms, {"query": name, "table": table})


def request_finished(function: str, route: str, status: int, ms: float) -> None:
    """Records a request and, at most once per interval, exports on this (the request's) thread."""
    m = _get()
    if m is None:
        return
    m.request_ms.record(ms, {"function": function, "route": route, "status_class": f"{status // 100}xx"})
    m.maybe_export()


def heartbeat(status: str, *, credited_seconds: float, reported_seconds: float) -> None:
    m = _get()
    if m is None:
        return
    m.heartbeats.add(1, {"status": status})
    if reported_seconds > 0:
        m.reported.add(reported_seconds)
    if credited_seconds > 0:
        m.credited.add(credited_seconds)


def heartbeat_rejected(reason: str) -> None:
    m = _get()
    if m is not None:
        m.rejected.add(1, {"reason": reason})


def credit(outcome: str) -> None:
    m = _get()
    if m is not None:
        m.credits.add(1, {"outcome": outcome})


def replica_read(outcome: str) -> None:
    m = _get()
    if m is not None:
        m.replica_reads.add(1, {"outcome": outcome})


def flush() -> bool:
    """Exports now (event handlers call it at the end of a delivery; tests call it)."""
    m = _get()
    return m.maybe_export(force=True) if m is not None else False


def event_finished() -> None:
    """The end of a CloudEvent delivery: export if the interval has passed."""
    m = _get()
    if m is not None:
        m.maybe_export()
