"""A private PostgreSQL and a real ``python main.py serve`` for the fault tests, both of which the tests
may kill: the session's database is never touched.

The server runs in its own process group (``start_new_session``), so a test can kill the whole group
(``SIGKILL`` to the arbiter and its gunicorn workers) or only the workers. PostgreSQL is a pgserver
instance in a temporary directory, stopped with ``pg_ctl stop -m immediate`` (what a crash or an
operator's emergency stop does: no checkpoint, every session cut) and started again.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from shared.config import ROOT, Settings
from shared.db import APP_ROLE, Conn, _session_setup, connect_url, with_database
from shared.embedded import socket_url

DB_NAME = "earnpay_crash"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Postgres:
    """A private pgserver PostgreSQL that can be crashed (``stop_immediately``) and started again."""

    def __init__(self) -> None:
        import pgserver

        self.dir = Path(tempfile.mkdtemp(prefix="earnpay-crash-pg-"))
        self.pgdata = self.dir / "data"
        # cleanup_mode=None: this test stops it (and removes the directory) itself
        self.server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        self.server_url = socket_url(self.pgdata)
        self.admin_url = with_database(self.server_url, DB_NAME)
        self.app_url = with_database(self.server_url, DB_NAME, user=APP_ROLE)

    def _pg_ctl(self, *args: str) -> None:
        from pgserver._commands import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self.server.system_user, timeout=30)

    def stop_immediately(self) -> None:
        self._pg_ctl("-w", "-m", "immediate", "stop")

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def owner(self, settings: Settings) -> Conn:
        raw = _session_setup(connect_url(self.admin_url), settings)
        return Conn(raw, settings)

    def destroy(self) -> None:
        with contextlib.suppress(Exception):  # already stopped
            self._pg_ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Answer:
    """One HTTP exchange: the status (None: the connection broke, as it does when the server is killed)."""

    status: int | None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: str | None = None


class Server:
    """``python main.py serve`` against the private database, in its own process group."""

    def __init__(self, pg: Postgres, *, workers: int = 2, threads: int = 16, env: dict[str, str] | None = None) -> None:
        self.pg = pg
        self.workers = workers
        self.threads = threads
        self.extra_env = env or {}
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = Path(pg.dir) / f"server-{self.port}.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, env: dict[str, str] | None = None) -> None:
        environ = {**os.environ, **self.extra_env, **(env or {})}
        environ.update(
            {
                "DATABASE_URL": self.pg.app_url,
                "MIGRATE_DATABASE_URL": self.pg.admin_url,
                "EARNPAY_ENV": "test",
                "PUBSUB_ENABLED": "false",
            }
        )
        environ.pop("STORAGE_EMULATOR_HOST", None)  # serve starts its own in-memory one
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "main.py",
                    "serve",
                    "--port",
                    str(self.port),
                    "--workers",
                    str(self.workers),
                    "--threads",
                    str(self.threads),
                    "--no-seed",
                    "--no-pubsub",
                    "--no-scheduler",
                ],
                cwd=ROOT,
                env=environ,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            answer = self.call("GET", "/health/", timeout=2)
            if answer.status == 200:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the server did not become ready:\n{self.log.read_text()[-3000:]}")

    def worker_pids(self) -> list[int]:
        """The gunicorn workers: the children of serve's HTTP server process (``python -m shared.localserver``)."""
        assert self.proc is not None
        pids: list[int] = []
        for child in psutil.Process(self.proc.pid).children():
            try:
                if "shared.localserver" in " ".join(child.cmdline()):
                    pids += [w.pid for w in child.children() if w.status() != psutil.STATUS_ZOMBIE]
            except psutil.NoSuchProcess:  # a process that ended while we looked
                continue
        return pids

    def kill_group(self) -> None:
        """SIGKILL to the arbiter and every worker at once (a machine or container dying)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def kill_workers(self) -> list[int]:
        """SIGKILL to the gunicorn workers only (out of memory, a crash in a worker); the arbiter respawns them."""
        pids = self.worker_pids()
        assert pids, "no workers to kill"
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def wait_new_workers(self, old: list[int], timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            now = self.worker_pids()
            if len(now) >= self.workers and not set(now) & set(old):
                self.wait_ready()
                return
            time.sleep(0.05)
        raise RuntimeError("gunicorn did not respawn its workers")

    def stop(self) -> None:
        """Ends the server (SIGKILL to the group: a test server has nothing to flush, and serve's local
        storage emulator keeps a gentler shutdown waiting for seconds)."""
        self.kill_group()

    def call(
        self, method: str, path: str, *, json_body: Any = None, headers: dict[str, str] | None = None, timeout: float = 30.0
    ) -> Answer:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            hdrs = dict(headers or {})
            body = None
            if json_body is not None:
                body = json.dumps(json_body).encode()
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                parsed = json.loads(raw) if raw else None
            except ValueError:
                parsed = raw.decode(errors="replace")
            return Answer(resp.status, parsed, {k.lower(): v for k, v in resp.getheaders()})
        except (OSError, http.client.HTTPException) as exc:
            return Answer(None, error=f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()
