"""Benchmark plumbing: a persistent benchmark database, the real local server, timing and tables.

Every benchmark talks to ``python main.py serve`` over real HTTP on loopback (the server is a
subprocess, as in production), against a PostgreSQL started from pgserver in ``.data/bench-pg``
(kept between runs so large generated data sets are loaded once).
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH_PGDATA = ROOT / ".data" / "bench-pg"
# The benchmark PostgreSQL's shared buffers: a quarter of this machine's memory, between pgserver's
# 128 MB and 8 GB. Production's Cloud SQL tiers give PostgreSQL about a third of theirs (tens of GB on
# the sized primary), so the rows 200,000 concurrent users touch stay in its buffers; on 128 MB against
# the 10-million-entry data set (~10 GB) nearly every ledger write read its index pages back through
# the OS page cache (a credit to a user not seen for a while: ~1.4 ms instead of ~0.35; bench/README.md).
BENCH_SHARED_BUFFERS_FRACTION = 0.25
BENCH_SHARED_BUFFERS_MAX_MB = 8192


def bench_shared_buffers_mb() -> int:
    total_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
    return max(128, min(BENCH_SHARED_BUFFERS_MAX_MB, int(total_mb * BENCH_SHARED_BUFFERS_FRACTION)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class BenchDb:
    """URLs of a migrated benchmark database on the embedded server."""

    server_url: str  # superuser, database postgres
    admin_url: str  # superuser (schema owner), the benchmark database
    app_url: str  # the application role, the benchmark database
    name: str
    pgdata: Path

    def env(self) -> dict[str, str]:
        return {"DATABASE_URL": self.app_url, "MIGRATE_DATABASE_URL": self.admin_url}

    def bin(self, tool: str) -> str:
        import pgserver

        return str(Path(pgserver.__file__).parent / "pginstall" / "bin" / tool)


def bench_database(name: str = "earnpay_bench") -> BenchDb:
    """Starts the benchmark PostgreSQL (persistent), creates and migrates ``name``."""
    os.environ.setdefault("EARNPAY_ENV", "test")
    from shared.config import get_settings
    from shared.db import APP_ROLE, with_database
    from shared.dbsetup import create_database_if_missing, prepare
    from shared.embedded import socket_url, start

    start(BENCH_PGDATA)  # stopped when the benchmark exits (it restarts in ~0.2 s on its kept data directory)
    server = socket_url(BENCH_PGDATA)
    _size_shared_buffers(server)
    create_database_if_missing(server, name)
    admin = with_database(server, name)
    app = with_database(server, name, user=APP_ROLE)
    os.environ.update({"DATABASE_URL": app, "MIGRATE_DATABASE_URL": admin})
    get_settings.cache_clear()
    prepare(get_settings())
    from shared.db import connect_url

    raw = connect_url(admin)
    raw.autocommit = True
    raw.execute_simple(f"ALTER ROLE {APP_ROLE} LOGIN")
    raw.close()
    return BenchDb(server, admin, app, name, BENCH_PGDATA)


def _size_shared_buffers(server: str) -> None:
    """Sets the benchmark server's shared buffers (``bench_shared_buffers_mb``) and restarts it when they differ."""
    from shared.db import connect_url
    from shared.embedded import start, stop

    wanted = bench_shared_buffers_mb()
    raw = connect_url(server)
    raw.autocommit = True
    try:
        have = int(raw.execute_simple("SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'").rows[0][0])
        if have == wanted:
            return
        raw.execute_simple(f"ALTER SYSTEM SET shared_buffers = '{wanted}MB'")
    finally:
        raw.close()
    stop(BENCH_PGDATA)
    start(BENCH_PGDATA)


@contextmanager
def local_server(db: BenchDb, *, workers: int = 2, threads: int = 8, extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Runs ``python main.py serve`` against ``db``; yields ``host:port``."""
    port = free_port()
    env = dict(os.environ)
    env.update(db.env())
    env.update(
        {
            "EARNPAY_ENV": "local",
            # The benchmark drives one user and one address far past human rates: the limits still
            # run (their cost is measured), they just never trip.
            "USER_REQUESTS_PER_MINUTE": "1000000000",
            "IP_LOGIN_PER_MINUTE": "1000000000",
            "IP_SIGNUP_PER_HOUR": "1000000000",
            "DB_POOL_SIZE": str(threads),
        }
    )
    # the benchmark delivers credit requests to /credit_earnings as the local Pub/Sub would: with the token
    env["EARNPAY_EVENT_TOKEN"] = EVENT_TOKEN
    env.update(extra_env or {})
    cmd = [sys.executable, "main.py", "serve", "--port", str(port), "--workers", str(workers), "--threads", str(threads), "--no-seed"]
    # the functions alone: no Pub/Sub emulator or scheduler competing for the cores being measured
    cmd += ["--no-pubsub", "--no-scheduler"]
    # The server's output goes to a file: a pipe nobody reads fills up and blocks the server.
    log_path = ROOT / ".data" / f"bench-server-{port}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "wb")  # noqa: SIM115  # closed in the finally below
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    hostport = f"127.0.0.1:{port}"
    SERVER_PGIDS[hostport] = proc.pid  # its own session: the process group holds gunicorn's arbiter and workers
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError("server exited: " + log_path.read_text(errors="replace")[-2000:])
            try:
                status, _ = Client(hostport).request("GET", "/health/")
                if status == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("server did not become healthy in 60 s")
        yield hostport
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)  # serve stops what it started (within 10 s)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        log_file.close()
        SERVER_PGIDS.pop(hostport, None)


SERVER_PGIDS: dict[str, int] = {}
EVENT_TOKEN = secrets.token_urlsafe(24)


def _cpu_ticks(pid: int) -> tuple[int, int, int] | None:
    """(utime + stime, ppid, pgid) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12]), int(fields[1]), int(fields[2])


class CpuMeter:
    """CPU time (user + system, from /proc) spent by the local server's processes, the benchmark
    PostgreSQL's processes and this load-generating process between ``start()`` and ``stop()``.

    On a machine where all three share the same cores this says where the time per request goes.
    Linux only; on other systems every figure is None.
    """

    def __init__(self, db: BenchDb, hostport: str) -> None:
        self.server_pgid = SERVER_PGIDS[hostport]
        self.postmaster = int((db.pgdata / "postmaster.pid").read_text().split()[0])
        self.start_ticks: dict[int, tuple[str, int]] = {}
        self.enabled = os.path.exists("/proc/self/stat")

    def _snapshot(self) -> dict[int, tuple[str, int]]:
        snap: dict[int, tuple[str, int]] = {}
        me = os.getpid()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            got = _cpu_ticks(pid)
            if got is None:
                continue
            ticks, ppid, pgid = got
            if pid == me:
                snap[pid] = ("client", ticks)
            elif pgid == self.server_pgid:
                snap[pid] = ("server", ticks)
            elif pid == self.postmaster or ppid == self.postmaster:
                snap[pid] = ("postgres", ticks)
        return snap

    def start(self) -> None:
        if self.enabled:
            self.start_ticks = self._snapshot()

    def stop(self, requests: int) -> dict[str, float | None]:
        """Milliseconds of CPU per request by group (server, postgres, client) since ``start()``."""
        if not self.enabled or not requests:
            return {"server": None, "postgres": None, "client": None}
        hz = os.sysconf("SC_CLK_TCK")
        totals = {"server": 0, "postgres": 0, "client": 0}
        for pid, (group, ticks) in self._snapshot().items():
            before = self.start_ticks.get(pid, (group, 0))[1]  # a process started since counts from zero
            totals[group] += ticks - before
        return {group: round(t / hz * 1000 / requests, 2) for group, t in totals.items()}


class Client:
    """A keep-alive HTTP/1.1 client (one per thread), as a mobile app's connection would be."""

    def __init__(self, hostport: str) -> None:
        host, port = hostport.split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def request(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        hdrs = {"Content-Type": "application/json"} if body is not None else {}
        hdrs.update(headers or {})
        data = body if isinstance(body, bytes) else (json.dumps(body).encode() if body is not None else None)
        self.conn.request(method, path, body=data, headers=hdrs)
        resp = self.conn.getresponse()
        return resp.status, resp.read()

    def json(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, expect: int = 200) -> Any:
        status, data = self.request(method, path, body, headers)
        if status != expect:
            raise RuntimeError(f"{method} {path} -> {status}: {data[:500]!r}")
        return json.loads(data) if data else None


def time_calls(fn: Callable[[], Any], n: int, warmup: int = 20) -> list[float]:
    """Runs ``fn`` ``n`` times after ``warmup`` calls; returns each call's milliseconds."""
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def pct(samples: list[float], q: float) -> float:
    """The q-th percentile (0-100) by the nearest-rank method."""
    ordered = sorted(samples)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary(name: str, samples: list[float], target: str = "", met: bool | None = None) -> dict[str, Any]:
    return {
        "benchmark": name,
        "n": len(samples),
        "p50 ms": round(statistics.median(samples), 3),
        "p99 ms": round(pct(samples, 99), 3),
        "target": target,
        "met": "" if met is None else ("yes" if met else "NO"),
    }


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    """Prints rows as an aligned text table (and remembers them for --json)."""
    if not rows:
        return
    cols: list[str] = []
    for row in rows:
        cols += [c for c in row if c not in cols]
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in cols}
    print(f"\n## {title}")
    print(" | ".join(c.ljust(widths[c]) for c in cols))
    print("-+-".join("-" * widths[c] for c in cols))
    for row in rows:
        print(" | ".join(str(row.get(c, "")).ljust(widths[c]) for c in cols))
    RESULTS.setdefault(title, []).extend(rows)
    sys.stdout.flush()


RESULTS: dict[str, list[dict[str, Any]]] = {}
