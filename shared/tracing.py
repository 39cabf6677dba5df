"""Traces: one OpenTelemetry span per sampled HTTP request, one child span per query it runs.

What a trace holds (Cloud Trace in production):

  <METHOD> /<function><route pattern>   SERVER span, attributes ``earnpay.function``, ``http.request.method``,
                                        ``http.route`` (the pattern: no ids), ``http.response.status_code``
    <query name>                        CLIENT span per statement (``Query.name``), attributes ``db.system``,
                                        ``db.query.name`` and ``db.collection.name`` (the table, as the
                                        metrics' ``table`` attribute)

Sampling. ``TRACE_SAMPLE_RATIO`` of requests are traced (default 1 %); a caller that sends a sampled
W3C ``traceparent`` (Google's front end, a traced client) is always followed, and the request's spans
join its trace. The decision is made before any OpenTelemetry object exists: a request that is not
traced costs one ``random()`` and a query a context-variable read, which keeps the heartbeat's CPU
(bench/README.md) where it was.

Export without a background thread (why: shared/metrics.py). Finished spans wait in memory; the end
of the first traced request ``TRACES_EXPORT_INTERVAL_S`` (default 10 s) after the last export hands
them to the exporter on that request's thread. Exporters: ``gcp`` (Cloud Trace, production),
``file`` (JSON lines at ``TRACES_FILE``: development and tests), ``none`` (the default outside
production: nothing is traced).
"""

from __future__ import annotations

import contextvars
import json
import random
import threading
from pathlib import Path
from typing import Any

from shared.config import get_settings
from shared.lazy import Lazy
from shared.metrics import Cadence

# The span of the request this thread (or context) is serving, when that request is traced.
_current: contextvars.ContextVar[Any] = contextvars.ContextVar("earnpay_request_span", default=None)
# Spans buffered beyond this are exported at the next traced request's end, whatever the interval.
MAX_BUFFERED_SPANS = 2048


class _FileExporter:
    """Writes each finished span as one JSON line (development and tests read it)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def export(self, spans: list[Any]) -> None:
        lines = []
        for span in spans:
            parent = span.parent
            lines.append(
                json.dumps(
                    {
                        "name": span.name,
                        "kind": span.kind.name,
                        "trace_id": format(span.context.trace_id, "032x"),
                        "span_id": format(span.context.span_id, "016x"),
                        "parent_span_id": format(parent.span_id, "016x") if parent is not None else None,
                        "start_ns": span.start_time,
                        "end_ns": span.end_time,
                        "status": span.status.status_code.name,
                        "attributes": dict(span.attributes or {}),
                    },
                    default=str,
                )
            )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as fh:
            fh.write("".join(line + "\n" for line in lines))


class _Tracing:
    def __init__(self, exporter: Any, ratio: float, interval_s: float) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        settings = get_settings()
        self.exporter = exporter
        self.ratio = ratio
        self.cadence = Cadence(interval_s, "trace")
        self.buffer: list[Any] = []
        self._buffer_lock = threading.Lock()
        buffer, buffer_lock = self.buffer, self._buffer_lock

        class Buffering(SpanProcessor):
            """Keeps finished spans for the next export (on a request's thread: no timer thread)."""

            def on_end(self, span: Any) -> None:
                with buffer_lock:
                    buffer.append(span)

        resource = Resource.create({"service.name": settings.k_service or "earnpay-local", "deployment.environment": settings.env})
        # Sampling is decided in start_request, before a span exists: whatever reaches the SDK is traced.
        self.provider = TracerProvider(sampler=ALWAYS_ON, resource=resource)
        self.provider.add_span_processor(Buffering())
        self.tracer = self.provider.get_tracer("earnpay")
        self.propagator = TraceContextTextMapPropagator()

    def maybe_export(self, *, force: bool = False) -> bool:
        def export() -> bool:
            with self._buffer_lock:
                batch = self.buffer[:]
                self.buffer.clear()
            if batch:
                self.exporter.export(batch)
            return bool(batch)

        return self.cadence.run(export, force=force or len(self.buffer) >= MAX_BUFFERED_SPANS)


def _build() -> _Tracing | None:
    settings = get_settings()
    kind = settings.traces_exporter or ("gcp" if settings.is_production else "none")
    if kind == "none":
        return None
    if kind == "file":
        exporter: Any = _FileExporter(Path(settings.traces_file))
    else:
        from opentelemetry.exporter.cloud_trace import CloudTraceSpanExporter

        exporter = CloudTraceSpanExporter(project_id=settings.gcp_project)
    return _Tracing(exporter, settings.trace_sample_ratio, settings.traces_export_interval_s)


_provider: Lazy[_Tracing | None] = Lazy(_build)  # made once per process: tracing that is off costs a flag test
_get = _provider.get


def reset() -> None:
    """Forgets the provider (tests, after changing settings)."""
    _provider.reset()


def flush() -> bool:
    """Exports the buffered spans now (tests)."""
    t = _get()
    return t.maybe_export(force=True) if t is not None else False


# --- requests ---------------------------------------------------------------------------------------
class RequestTrace:
    """A traced request: its span and the context-variable token to restore at its end."""

    __slots__ = ("span", "token", "trace_id")

    def __init__(self, span: Any, token: contextvars.Token[Any]) -> None:
        self.span = span
        self.token = token
        self.trace_id = format(span.get_span_context().trace_id, "032x")


def start_request(function: str, method: str, traceparent: str | None) -> RequestTrace | None:
    """Starts the request's span when the request is sampled (else None, at the cost of one random())."""
    t = _get()
    if t is None:
        return None
    parent = None
    if traceparent:
        from opentelemetry import trace

        ctx = t.propagator.extract({"traceparent": traceparent})
        remote = trace.get_current_span(ctx).get_span_context()
        if remote.is_valid and remote.trace_flags.sampled:
            parent = ctx
    if parent is None and (t.ratio <= 0 or random.random() >= t.ratio):  # sampling, not secrecy
        return None
    from opentelemetry.trace import SpanKind

    span = t.tracer.start_span(
        function, context=parent, kind=SpanKind.SERVER, attributes={"earnpay.function": function, "http.request.method": method}
    )
    return RequestTrace(span, _current.set(span))


def end_request(handle: RequestTrace, function: str, method: str, route: str, status: int) -> None:
    """Ends the request's span (named after its route pattern) and exports when the interval has passed."""
    span = handle.span
    pattern = route.split(" ", 1)[1] if " " in route else route
    span.update_name(f"{method} /{function}{pattern}")
    span.set_attribute("http.route", pattern)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))
    span.end()
    _current.reset(handle.token)
    t = _get()
    if t is not None:
        t.maybe_export()


# --- queries ----------------------------------------------------------------------------------------
def current() -> Any:
    """The traced request's span, or None (then queries record nothing)."""
    return _current.get()


def query(parent: Any, name: str, table: str, start_ns: int, error: BaseException | None = None) -> None:
    """Records a finished query as a child of the request's span (called only when ``current()`` was set)."""
    t = _get()
    if t is None:
        return
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind

    span = t.tracer.start_span(
        name,
        context=trace.set_span_in_context(parent),
        kind=SpanKind.CLIENT,
        start_time=start_ns,
        attributes={"db.system": "postgresql", "db.query.name": name, "db.collection.name": table},
    )
    if error is not None:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR, type(error).__name__))
    span.end()
