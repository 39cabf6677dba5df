"""The profile and catalogue caches, across two server processes: cached, and invalidated at once on both.

Two real HTTP servers (separate processes, so separate caches) run the app against the test database.
A change made with triggers switched off (``session_replication_role = replica``, superuser only)
does not bump the versions: both servers keep answering from their caches, which shows the caches
are used. A normal change bumps the version and both servers answer the new data on their next request.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from shared.config import ROOT
from shared.db import Conn, Query
from tests.helpers import PASSWORD, random_ip, unique_email, verification_token

SERVER = (
    "import sys; from werkzeug.serving import make_server; from shared.localserver import make_app; "
    "make_server('127.0.0.1', int(sys.argv[1]), make_app(), threaded=True).serve_forever()"
)
TRIGGERS_OFF = Query("t_triggers_off", "SET session_replication_role = replica", prepared=False)
RENAME_QUIETLY = Query("t_rename_quietly", "UPDATE users SET display_name = 'Quiet' WHERE id = CAST(:id AS uuid)", prepared=False)
RENAME = Query("t_rename", "UPDATE users SET display_name = :name WHERE id = CAST(:id AS uuid)", prepared=False)
TRIGGERS_ON = Query("t_triggers_on", "SET session_replication_role = origin", prepared=False)
ADD_VIDEO_QUIETLY = Query(
    "t_add_video_quietly",
    "INSERT INTO videos (slug, title, duration_seconds, reward_micros) VALUES (:slug, 'Quiet video', 60, 1000)",
    prepared=False,
)
ADD_VIDEO = Query(
    "t_add_video", "INSERT INTO videos (slug, title, duration_seconds, reward_micros) VALUES (:slug, :title, 60, 1000)", prepared=False
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _call(port: int, method: str, path: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/json", "X-Forwarded-For": random_ip()}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else None
    finally:
        conn.close()


@pytest.fixture()
def two_servers(database: str) -> Iterator[tuple[int, int]]:
    env = dict(os.environ, EARNPAY_ENV="test", PUBSUB_ENABLED="false")
    procs, ports = [], []
    try:
        for _ in range(2):
            port = _free_port()
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", SERVER, str(port)],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
            ports.append(port)
        for port, proc in zip(ports, procs, strict=True):
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, "a server exited"
                try:
                    if _call(port, "GET", "/health/")[0] == 200:
                        break
                except OSError:
                    pass
                assert time.monotonic() < deadline, "a server did not start"
                time.sleep(0.2)
        yield ports[0], ports[1]
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _signup(port: int) -> tuple[str, str]:
    """Signs up and confirms the address with the emailed link's token (which signs in)."""
    email = unique_email("cache")
    status, data = _call(port, "POST", "/auth/signup", {"email": email, "password": PASSWORD, "display_name": "Before"})
    assert status == 202, data
    status, data = _call(port, "POST", "/auth/email/verify", {"token": verification_token(email)})
    assert status == 200, data
    return data["user"]["id"], data["session"]["token"]


def test_profile_cache_is_used_and_invalidated_on_every_instance(two_servers: tuple[int, int], owner_conn: Conn) -> None:
    a, b = two_servers
    user_id, token = _signup(a)
    for port in (a, b):
        status, me = _call(port, "GET", "/auth/me", token=token)
        assert status == 200 and me["display_name"] == "Before"
    # Changed behind the version's back: both instances still serve their cached profile.
    owner_conn.execute(TRIGGERS_OFF)
    owner_conn.execute(RENAME_QUIETLY, id=user_id)
    owner_conn.execute(TRIGGERS_ON)
    assert [_call(port, "GET", "/auth/me", token=token)[1]["display_name"] for port in (a, b)] == ["Before", "Before"]
    # A real change bumps profile_version: both instances answer the new name on their next request.
    owner_conn.execute(RENAME, id=user_id, name="After")
    assert [_call(port, "GET", "/auth/me", token=token)[1]["display_name"] for port in (a, b)] == ["After", "After"]


def test_catalogue_cache_is_used_and_invalidated_on_every_instance(two_servers: tuple[int, int], owner_conn: Conn) -> None:
    a, b = two_servers
    _, token = _signup(a)

    def titles(port: int) -> set[str]:
        status, data = _call(port, "GET", "/videos/", token=token)
        assert status == 200, data
        return {v["title"] for v in data["items"]}

    before = [titles(a), titles(b)]
    owner_conn.execute(TRIGGERS_OFF)
    owner_conn.execute(ADD_VIDEO_QUIETLY, slug=f"quiet-{time.time_ns()}")
    owner_conn.execute(TRIGGERS_ON)
    assert [titles(a), titles(b)] == before and "Quiet video" not in before[0]
    title = f"Cache test {time.time_ns()}"
    owner_conn.execute(ADD_VIDEO, slug=f"loud-{time.time_ns()}", title=title)
    after = [titles(a), titles(b)]
    assert all(title in t and "Quiet video" in t for t in after)
