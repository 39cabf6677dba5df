"""The local platform as a user runs it: ``python main.py serve`` in a subprocess, on a free port, with
its own data directory (embedded PostgreSQL, stored objects, KEK), never the repository's .data.

* stops on SIGTERM and on SIGINT within 10 s, exit 0, leaving none of the processes it started
  (the HTTP server and its workers, the Pub/Sub emulator and its java, the embedded PostgreSQL);
* a busy port is one line on stderr and a non-zero exit within 5 s;
* its own Pub/Sub emulator delivers like production: a credit request published twice is credited
  once, a malformed one ends on the dead-letter topic; a scheduler job's message reaches its function;
* an anonymous POST to an event function is refused; an export (and any stored object) survives a restart.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest

from shared.localplatform import pubsub_emulator_unavailable_reason
from tests.fixtures.pubsub import free_port

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0


def _env(data: Path) -> dict[str, str]:
    """The environment of a user's shell: no test database, no emulators, this test's data directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PUBSUB_", "STORAGE_EMULATOR", "EARNPAY_"))}
    for key in ("DATABASE_URL", "MIGRATE_DATABASE_URL", "GCP_PROJECT", "LOCAL_KEK_BASE64"):
        env.pop(key, None)
    env.update(
        {
            "EARNPAY_ENV": "local",
            "EMBEDDED_PGDATA": str(data / "pg"),
            "LOCAL_STORAGE_DIR": str(data / "storage"),
            "LOCAL_KEK_FILE": str(data / "local-kek"),
        }
    )
    return env


@dataclass
class Serve:
    """A running ``python main.py serve``: its process, port, data directory and output."""

    proc: subprocess.Popen[bytes]
    port: int
    data: Path
    log: Path
    started: list[psutil.Process] = field(default_factory=list)
    names: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def line(self, pattern: str) -> re.Match[str]:
        match = re.search(pattern, self.output())
        assert match, f"no line matching {pattern!r} in:\n{self.output()[-3000:]}"
        return match

    def postmaster(self) -> int | None:
        pid_file = self.data / "pg" / "postmaster.pid"
        return int(pid_file.read_text().split()[0]) if pid_file.exists() else None

    def stop(self, sig: signal.Signals) -> tuple[int, float]:
        """Sends ``sig``; returns (exit status, seconds it took)."""
        t0 = time.monotonic()
        self.proc.send_signal(sig)
        status = self.proc.wait(timeout=30)
        return status, time.monotonic() - t0


def start(data: Path, *args: str, port: int | None = None) -> Serve:
    port = port or free_port()
    log = data / f"serve-{port}.log"
    data.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "main.py", "serve", "--port", str(port), "--no-seed", *args],
            cwd=ROOT,
            env=_env(data),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    server = Serve(proc, port, data, log)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while "EarnPay ready on" not in server.output():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not start (exit {proc.poll()}):\n{server.output()[-3000:]}")
        time.sleep(0.1)
    # everything it started: its descendants (HTTP server, workers, gcloud, java) and the database
    server.started = psutil.Process(proc.pid).children(recursive=True)
    postmaster = server.postmaster()
    if postmaster:
        server.started.append(psutil.Process(postmaster))
    with contextlib.suppress(psutil.Error):
        server.names = [p.name() for p in server.started]
    return server


def assert_nothing_left(server: Serve) -> None:
    alive = []
    for p in server.started:
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
    assert not alive, "left running after serve stopped:\n" + "\n".join(alive)
    assert not (server.data / "pg" / "postmaster.pid").exists(), "the embedded PostgreSQL is still running"


@contextlib.contextmanager
def serving(data: Path, *args: str) -> Iterator[Serve]:
    """A serve for one test; killed (its whole tree) if the test fails before stopping it."""
    server = start(data, *args)
    try:
        yield server
    finally:  # whatever is still running (a failed test, or a serve that left something behind)
        for p in server.started:
            with contextlib.suppress(psutil.Error):
                if p.name() != "postgres":
                    p.kill()
        if server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait(timeout=10)
        postmaster = server.postmaster()
        if postmaster:  # a fast shutdown of the database it left behind
            with contextlib.suppress(psutil.Error):
                os.kill(postmaster, signal.SIGINT)
                psutil.Process(postmaster).wait(timeout=10)


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    kind = "text/plain" if isinstance(body, bytes) else "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": kind, **(headers or {})})  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310  # the local server
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        raw, status = exc.read(), exc.code
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw


def wait_for(what: str, check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def database(server: Serve) -> Any:
    """A superuser connection to the serve's own embedded database."""
    import pg8000.dbapi

    return pg8000.dbapi.connect(user="postgres", database="earnpay", unix_sock=str(server.data / "pg" / ".s.PGSQL.5432"))


def _count(server: Serve, sql: str, *params: Any) -> int:
    conn = database(server)
    try:
        cur = conn.cursor()
        cur.execute(sql, params)
        return int(cur.fetchone()[0])
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------- tests
def test_the_platform_runs_like_production_and_stops_on_sigterm(tmp_path: Path) -> None:
    reason = pubsub_emulator_unavailable_reason()
    if reason:
        pytest.skip(f"Pub/Sub emulator not available on this machine: {reason}")
    with serving(tmp_path, "--run-job", "maintenance-session-purge") as server:
        emulator = server.line(r"Pub/Sub emulator on (\S+) \(project (\S+)\)")
        host, project = emulator.group(1), emulator.group(2)

        # GET / says what runs here
        status, index = http("GET", server.url + "/")
        assert status == 200
        assert "credit_earnings" in index["functions"]["events"]
        assert "auth" in index["functions"]["http"]
        assert index["example"]["route"].endswith("/health/")
        assert index["docs"]["openapi"].endswith("/openapi.json")

        # an anonymous (or wrongly signed) event delivery is refused: nobody mints money by hand
        envelope = {"message": {"data": base64.b64encode(b"{}").decode(), "messageId": "1"}}
        assert http("POST", server.url + "/credit_earnings", envelope)[0] == 403
        assert http("POST", server.url + "/credit_earnings?event_token=guess", envelope)[0] == 403
        assert http("POST", server.url + "/credit_earnings", envelope, {"X-EarnPay-Event-Token": "guess"})[0] == 403

        # sign-up: the verification email goes outbox -> Pub/Sub -> send_notifications -> the local SMTP
        # server, which saves it under .data/mail/ where a developer reads the link
        email = f"p-{uuid.uuid4().hex[:8]}@example.com"
        body = {"email": email, "password": "correct horse battery", "display_name": "P"}
        status, accepted = http("POST", server.url + "/auth/signup", body)
        assert status == 202, accepted
        mail_dir = server.data / "mail"

        def verification_link() -> str | None:
            for path in sorted(mail_dir.glob("*.txt")) if mail_dir.exists() else []:
                text = path.read_text(errors="replace")
                found = re.search(r"/app/verify-email\?token=([A-Za-z0-9_\-]+)", text)
                if email in text and found:
                    return found.group(1)
            return None

        wait_for("the verification email", lambda: verification_link() is not None)
        status, box = http("GET", server.url + "/_mail?" + urllib.parse.urlencode({"to": email}))  # a developer's view
        assert status == 200 and box["items"][0]["subject"] == "Confirm your email address", box
        status, signup = http("POST", server.url + "/auth/email/verify", {"token": verification_link()})
        assert status == 200 and signup["user"]["email_verified"] is True, signup

        # a publisher on the emulator: the same credit request published twice is credited once
        user_id = signup["user"]["id"]
        request = {"request_id": f"r-{uuid.uuid4().hex}", "user_id": user_id, "amount_micros": 4321}
        request.update({"type": "adjustment", "source": "partner"})

        def publish(topic: str, data: bytes) -> None:
            body = {"messages": [{"data": base64.b64encode(data).decode()}]}
            assert http("POST", f"http://{host}/v1/projects/{project}/topics/{topic}:publish", body)[0] == 200

        publish("earnings-credit-requests", json.dumps(request).encode())
        publish("earnings-credit-requests", json.dumps(request).encode())
        key = f"credit:partner:{request['request_id']}"
        wait_for("the credit", lambda: _count(server, "SELECT count(*) FROM earnings WHERE idempotency_key = %s", key))
        time.sleep(1.0)  # the second delivery has had its chance
        assert _count(server, "SELECT count(*) FROM earnings WHERE idempotency_key = %s", key) == 1
        assert _count(server, "SELECT available FROM balances WHERE user_id = CAST(%s AS uuid)", user_id) == 4321

        # a malformed message ends on the dead-letter topic (its hold subscription keeps it)
        marker = uuid.uuid4().hex
        publish("earnings-credit-requests", json.dumps({"user_id": "nobody", "marker": marker}).encode())  # not a credit request
        hold = f"http://{host}/v1/projects/{project}/subscriptions/earnings-credit-requests-dead-letter-hold:pull"

        def dead_lettered() -> bool:
            _, got = http("POST", hold, {"maxMessages": 100})
            return any(marker in base64.b64decode(m["message"]["data"]).decode() for m in (got or {}).get("receivedMessages", []))

        wait_for("the dead letter", dead_lettered)

        # a privacy export: requested over HTTP, built by export_user_data from the privacy-exports push
        auth = {"Authorization": f"Bearer {signup['session']['token']}"}
        status, export = http("POST", server.url + "/privacy/export", {}, auth)
        assert status in (200, 202), export
        export_url = f"{server.url}/privacy/export/{export['id']}"
        wait_for("the export", lambda: http("GET", export_url, None, auth)[1]["status"] == "ready")

        # the scheduler stand-in's job reached its function through the emulator
        wait_for("the scheduled maintenance task", lambda: "maintenance task session_purge done" in server.output())
        assert "scheduler published maintenance-session-purge to maintenance-tasks" in server.output()

        status, took = server.stop(signal.SIGTERM)
        assert status == 0, server.output()[-2000:]
        assert took < 10, f"serve took {took:.1f} s to stop"
        assert_nothing_left(server)
        assert "java" in server.names, server.names
        assert "postgres" in server.names, server.names

    # the document outlives the server: after a restart its download still answers
    with serving(tmp_path, "--no-pubsub", "--no-scheduler") as again:
        status, ready = http("GET", export_url.replace(server.url, again.url), None, auth)
        assert status == 200, ready
        assert ready["status"] == "ready", ready
        with urllib.request.urlopen(ready["download_url"], timeout=10) as resp:  # noqa: S310  # the local emulator
            assert json.loads(resp.read())["user_id"] == user_id
        assert again.stop(signal.SIGINT)[0] == 0
        assert_nothing_left(again)


def test_stored_objects_survive_a_restart_and_sigint_stops_everything(tmp_path: Path) -> None:
    name = f"documents/{uuid.uuid4().hex}.txt"
    # without Pub/Sub, --run-job delivers the job's message straight to its function
    with serving(tmp_path, "--no-pubsub", "--no-scheduler", "--run-job", "maintenance-session-purge") as server:
        wait_for("the job run without Pub/Sub", lambda: "maintenance task session_purge done" in server.output())
        gcs = server.line(r"GCS emulator on (\S+), objects kept in").group(1)
        bucket = "earnpay-local-kyc"
        status, _ = http("POST", f"{gcs}/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}", b"kept across restarts")
        assert status == 200
        status, took = server.stop(signal.SIGINT)
        assert status == 0 and took < 10, (status, took, server.output()[-2000:])
        assert_nothing_left(server)
    with serving(tmp_path, "--no-pubsub", "--no-scheduler") as again:
        gcs = again.line(r"GCS emulator on (\S+), objects kept in").group(1)
        with urllib.request.urlopen(f"{gcs}/storage/v1/b/{bucket}/o/{urllib.parse.quote(name, safe='')}?alt=media") as resp:  # noqa: S310
            assert resp.read() == b"kept across restarts"
        status, _ = again.stop(signal.SIGTERM)
        assert status == 0
        assert_nothing_left(again)


def test_a_busy_port_is_one_line_and_a_quick_failure(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        t0 = time.monotonic()
        result = subprocess.run(
            [sys.executable, "main.py", "serve", "--port", str(port)],
            cwd=ROOT,
            env=_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        took = time.monotonic() - t0
    assert result.returncode != 0 and took < 5, (result.returncode, took)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"port {port}" in lines[0] and "already in use" in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert not (tmp_path / "pg").exists(), "nothing is started before the port is known to be free"
