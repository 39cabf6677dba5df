"""Watchers without Locust: a cross-check of the step table's heartbeat latency.

    .venv/bin/python -m bench.watchers                       # 250, 1000, 2000 watchers, 90 s each
    .venv/bin/python -m bench.watchers --steps 250,500 --seconds 60

Each simultaneous watcher is one thread of this process with its own keep-alive connection
(http.client, headers and body in one write) to the real local server (the same set-up as
``bench.steps``: gunicorn gthread, 2 workers x 8 threads, the seed-scale data set). Every 10 s, at
its own phase, it sends the next heartbeat of its stream (position +10 s, the same stream id), and
starts a new stream after a completion, as the Locust profile's watchers do; unlike that profile it
sends nothing else (no catalogue, history, login or export), so it measures the heartbeat floor
alone. It prints per step: heartbeats/s, p50/p95/p99, completions, and whether the product
document's floor (p99 < 50 ms) is met, then the largest step that met it, per core.

Why it exists: in the quiet-machine run of 2026-12-07 the Locust steps reported a heartbeat p50 of
~30 ms at 250 watchers while the cores were ~90 % idle and Locust itself used ~1 % of a core; a
plain client measuring during the same step saw p50 3.8 ms. This suite is the plain client, run as
a documented benchmark (bench/README.md).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import threading
import time
import uuid
from typing import Any

from bench.common import bench_database, local_server, pct, print_table
from bench.steps import _catalogue, _mint_sessions

CADENCE_S = 10.0
FLOOR_MS = 50.0


def _watch(
    hostport: str, token: str, videos: list[str], until: float, start_at: float, out: list[tuple[float, bool]], lock: threading.Lock
) -> None:
    host, port = hostport.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    video, stream, seq = random.choice(videos), str(uuid.uuid4()), 0  # load mix, not security
    next_at = start_at
    while True:
        time.sleep(max(0.0, next_at - time.monotonic()))
        if time.monotonic() >= until:
            break
        seq += 1
        body = json.dumps({"position_seconds": (seq - 1) * CADENCE_S, "playing": True, "client_seq": seq, "session_id": stream})
        t0 = time.perf_counter()
        conn.request("POST", f"/progress/{video}", body, headers)
        response = conn.getresponse()
        data: Any = json.loads(response.read() or b"{}")
        ms = (time.perf_counter() - t0) * 1000
        if response.status != 200:
            raise RuntimeError(f"heartbeat answered {response.status}: {data}")
        completed = bool(data.get("completed"))
        with lock:
            out.append((ms, completed))
        if completed or seq * CADENCE_S > float(data.get("duration_seconds") or 0):
            video, stream, seq = random.choice(videos), str(uuid.uuid4()), 0
        next_at += CADENCE_S
    conn.close()


def step(hostport: str, tokens: list[str], videos: list[str], watchers: int, seconds: float) -> dict[str, Any]:
    """``watchers`` threads for a ramp of one cadence, then ``seconds`` measured."""
    lock = threading.Lock()
    samples: list[tuple[float, bool]] = []
    now = time.monotonic()
    measure_from = now + CADENCE_S  # every watcher has sent its first heartbeat (the cheapest) by then
    until = measure_from + seconds
    threads = [
        threading.Thread(
            target=_watch, args=(hostport, tokens[i], videos, until, now + random.uniform(0, CADENCE_S), samples, lock), daemon=True
        )
        for i in range(watchers)
    ]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from - time.monotonic()))
    with lock:
        ramp = len(samples)
    for t in threads:
        t.join()
    measured = samples[ramp:]
    times = [ms for ms, _ in measured]
    p99 = pct(times, 99)
    return {
        "watchers": watchers,
        "heartbeats/s": round(len(measured) / seconds, 1),
        "p50 ms": round(statistics.median(times), 1),
        "p95 ms": round(pct(times, 95), 1),
        "p99 ms": round(p99, 1),
        "completions": sum(1 for _, done in measured if done),
        "floor met (p99 < 50 ms)": "yes" if p99 < FLOOR_MS else "no",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.watchers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default="250,1000,2000", help="simultaneous watchers per step")
    parser.add_argument(
        "--seconds",
        type=float,
        default=90.0,
        help="measured seconds per step, after a 10 s ramp (60 s videos: at least 60 for completions)",
    )
    args = parser.parse_args(argv)
    counts = [int(c) for c in args.steps.split(",")]
    db = bench_database()
    rows = []
    with local_server(db) as hostport:
        videos = _catalogue(db)
        tokens = _mint_sessions(db, 150_001, max(counts))
        for n in counts:
            rows.append(step(hostport, tokens, videos, n, args.seconds))
            print(f"step {n}: p99 {rows[-1]['p99 ms']} ms", flush=True)
    print_table("watchers (heartbeats only, plain keep-alive clients)", rows)
    met = [r["watchers"] for r in rows if r["floor met (p99 < 50 ms)"] == "yes"]
    cores = os.cpu_count() or 1
    best = max(met) if met else 0
    print(f"\nlargest step with the heartbeat's p99 < 50 ms: {best} watchers on {cores} cores = {best // cores} watchers per core")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
