"""The Locust load profile: virtual EarnPay users who watch videos, from the capacity model's mix.

Driven by ``python -m bench.steps`` (bench/README.md), which starts the benchmark database and the
real local server, mints one session per virtual user and runs this file headless at each step.
Run by hand only against a server started the same way (``--host http://127.0.0.1:PORT``, with
``BENCH_TOKENS`` and ``BENCH_VIDEOS`` files as bench/steps.py writes them).

Each virtual user is a watcher: every 10 s (``own_pacing``, at its own phase) it sends the heartbeat of the
video it is watching, and with the probability that ``bench.capacity.MIX`` gives per 10 s it also
browses the catalogue, reads its profile, a history page or its stats, exports its history, signs
in again (argon2id) or asks for a payout. When a video completes (its reward is credited), it
picks another from the catalogue.

Payout requests from the generated users are answered 4xx (they have no verified payout method
and no KYC); the profile counts a clear 4xx there as served, anything else as a failure.
"""

from __future__ import annotations

import itertools
import os
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import gevent
from locust import FastHttpUser, task

from bench.capacity import HEARTBEAT_EVERY_S, MIX

PASSWORD = "benchmark password 123"  # bench/generate.py's users
GENERATED_USERS = int(os.environ.get("BENCH_USERS", "200000"))
_tokens = [t for t in Path(os.environ["BENCH_TOKENS"]).read_text().split() if t] if os.environ.get("BENCH_TOKENS") else []
_videos = [v for v in Path(os.environ["BENCH_VIDEOS"]).read_text().split() if v] if os.environ.get("BENCH_VIDEOS") else []
_next = itertools.count()
_next_lock = threading.Lock()
TICKS_PER_MINUTE = 60 / HEARTBEAT_EVERY_S


def _chance(action: str) -> bool:
    return random.random() < MIX[action] / TICKS_PER_MINUTE  # load mix, not security


def own_pacing(user: Watcher) -> float:
    """A tick every HEARTBEAT_EVERY_S at the user's own phase, whatever a tick takes.

    Not Locust's ``constant_pacing``: it counts from when the user was created, so the random start
    below counted as the first tick's run time, and every user spawned in the same second (Locust
    spawns a step's users in batches, one a second) ticked in the same instant from then on. At 250
    watchers that was a burst of 25 heartbeats every second, and the queue at each burst was most of
    the latency measured (strace on the Locust process, bench/README.md)."""
    user.next_tick += HEARTBEAT_EVERY_S
    return max(0.0, user.next_tick - time.monotonic())


class Watcher(FastHttpUser):
    wait_time = own_pacing

    def on_start(self) -> None:
        # Real watchers are not in step: each starts at a random point of the 10 s cadence and keeps it.
        gevent.sleep(random.uniform(0, HEARTBEAT_EVERY_S))
        self.next_tick = time.monotonic()
        with _next_lock:
            n = next(_next)
        self.token = _tokens[n % len(_tokens)]
        self.headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        self._new_video()

    def _new_video(self) -> None:
        self.video = random.choice(_videos)
        self.position = 0.0
        self.seq = 1
        self.stream = str(uuid.uuid4())

    def _get(self, path: str, name: str) -> None:
        self.client.get(path, headers=self.headers, name=name)

    @task
    def tick(self) -> None:
        body = {"position_seconds": self.position, "playing": True, "client_seq": self.seq, "session_id": self.stream}
        path, name = f"/progress/{self.video}", "POST /progress/{video_id}"
        with self.client.post(path, json=body, headers=self.headers, name=name, catch_response=True) as r:
            if r.status_code == 200:
                data: Any = r.json()
                r.success()
                if data.get("completed"):
                    self._get("/videos/", "GET /videos/")
                    self._new_video()
                elif self.position + HEARTBEAT_EVERY_S > float(data.get("duration_seconds") or 0):
                    self._new_video()  # watched to the end without completing (a late tick credited less)
                else:
                    self.position += HEARTBEAT_EVERY_S
                    self.seq += 1
            else:
                r.failure(f"{r.status_code}: {(r.text or '')[:200]}")
        if _chance("catalogue"):
            self._get("/videos/", "GET /videos/")
        if _chance("profile"):
            self._get("/auth/me", "GET /auth/me")
        if _chance("history"):
            self._get("/earnings/?limit=50", "GET /earnings/")
        if _chance("stats"):
            self._get("/earnings/stats", "GET /earnings/stats")
        if _chance("export"):
            self._get("/earnings/export", "GET /earnings/export")
        if _chance("login"):
            i = random.randint(2, GENERATED_USERS)
            self.client.post("/auth/login", json={"email": f"bench-gen-{i}@example.com", "password": PASSWORD}, name="POST /auth/login")
        if _chance("payout"):
            body2 = {"amount_cents": 1000, "password": PASSWORD}
            with self.client.post("/payouts/", json=body2, headers=self.headers, name="POST /payouts/", catch_response=True) as r:
                if 400 <= r.status_code < 500 and (r.text or "").startswith("{"):
                    r.success()  # no KYC / payout method: a clear refusal is the expected answer
