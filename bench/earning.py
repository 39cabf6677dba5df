"""The earning benchmark at the product's scale, over real HTTP to ``python main.py serve``.

``python -m bench earning`` (``--quick`` for a smoke run). Loads the data set once
(``bench/generate.py``: 200,000 users, ~10 million entries, one user with 10,000), then measures:

* history page of 50, newest and deepest, for the 10,000-entry user (1 keep-alive client);
* whole-history export of that user (1 client);
* progress heartbeats with 16 concurrent clients (16 users): p50 / p99 and throughput;
* credit requests pushed to ``/credit_earnings`` as Pub/Sub push CloudEvents, 16 clients: throughput;
* pgbench tpcb-like, 16 clients, against the same PostgreSQL server, and the ratio heartbeat / pgbench.

The server runs gunicorn with 2 workers x 8 threads (a pool of 8 connections each).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import statistics
import subprocess
import threading
import time
import uuid
from typing import Any

from bench import generate
from bench.common import EVENT_TOKEN, BenchDb, Client, CpuMeter, bench_database, local_server, pct, print_table, summary, time_calls

CLIENTS = 16
USERS = 200_000
PGBENCH_DB = "earnpay_pgbench"
PGBENCH_SCALE = 16


def _bench_user_id(i: int) -> str:
    return str(uuid.UUID(hashlib.md5(f"earnpay-bench-user-{i}".encode()).hexdigest()))  # noqa: S324  # an id, not a secret


def _long_video(db: BenchDb) -> str:
    raw = generate._connect(db.admin_url)
    try:
        raw.execute_simple(
            "INSERT INTO videos (slug, title, duration_seconds, reward_micros) "
            "VALUES ('bench-long-video', 'Benchmark: a day-long stream', 86400, 25000) ON CONFLICT (slug) DO NOTHING"
        )
        return str(raw.execute_simple("SELECT id::text FROM videos WHERE slug = 'bench-long-video'").rows[0][0])
    finally:
        raw.close()


def _concurrent(worker: Any, clients: int) -> tuple[list[float], float]:
    """Runs ``worker(i, samples)`` on ``clients`` threads started together; returns all samples and the wall time."""
    samples: list[list[float]] = [[] for _ in range(clients)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(clients + 1)

    def run(i: int) -> None:
        try:
            barrier.wait()
            worker(i, samples[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return [s for per in samples for s in per], wall


def _signup(client: Client, prefix: str) -> dict[str, str]:
    email = f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"
    client.json("POST", "/auth/signup", {"email": email, "password": generate.PASSWORD, "display_name": "Bench"}, expect=202)
    # watching and earning need no verified address: sign up, then log in
    data = client.json("POST", "/auth/login", {"email": email, "password": generate.PASSWORD})
    return {"Authorization": f"Bearer {data['session']['token']}"}


def _run_pgbench(db: BenchDb, database: str, *args: str) -> float:
    """Runs the server's own pgbench against ``database``; returns its TPS."""
    cmd = [db.bin("pgbench"), "-h", str(db.pgdata), "-p", "5432", "-U", "postgres", *args, database]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not match:
        raise RuntimeError("could not read pgbench's TPS:\n" + out)
    return float(match.group(1))


def _pgbench(db: BenchDb, seconds: int) -> float:
    """pgbench tpcb-like TPS with 16 clients on the benchmark server (scratch database, scale 16)."""
    from bench.generate import _connect

    raw = _connect(db.server_url)
    exists = raw.execute_simple(f"SELECT 1 FROM pg_database WHERE datname = '{PGBENCH_DB}'").rows
    if not exists:
        raw.execute_simple(f"CREATE DATABASE {PGBENCH_DB}")
    raw.close()
    if not exists:
        init = [db.bin("pgbench"), "-h", str(db.pgdata), "-p", "5432", "-U", "postgres", "-i", "-q", "-s", str(PGBENCH_SCALE), PGBENCH_DB]
        subprocess.run(init, check=True, capture_output=True)
    return _run_pgbench(db, PGBENCH_DB, "-c", str(CLIENTS), "-j", "2", "-T", str(seconds), "-b", "tpcb-like")


def _pgbench_heartbeats(db: BenchDb, video: str, seconds: int) -> float:
    """The heartbeat statement alone, driven by pgbench (16 clients, 16 generated users, one stream
    each, a growing client_seq) on the same server: the database's side of a heartbeat without the
    Python HTTP stack in front of it."""
    import tempfile

    script = (
        "\\set seq :seq + 1\n"
        "SELECT status FROM progress_heartbeat(md5('earnpay-bench-user-' || (:client_id + 100))::uuid, CAST(:vid AS uuid),"
        " (:seq * 0.01)::numeric, true, :seq, md5('bench-session-' || :client_id || '-' || CAST(:run AS text))::uuid, false, 5000000,"
        " 1000000000);\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as fh:
        fh.write(script)
    variables = ["-D", "seq=0", "-D", f"vid={video}", "-D", f"run={uuid.uuid4().hex}"]
    return _run_pgbench(db, db.name, "-n", "-M", "prepared", "-c", str(CLIENTS), "-j", "2", "-T", str(seconds), "-f", fh.name, *variables)


def main(args: argparse.Namespace) -> None:
    quick = bool(getattr(args, "quick", False))
    n_page, n_export, n_hb, n_credit = (100, 20, 100, 60) if quick else (1000, 200, 600, 300)
    db = bench_database()
    if not generate.loaded(db.admin_url, USERS):
        print("generating the earning data set (200,000 users, ~10 million entries; once)...", flush=True)
        generate.generate(db.admin_url, users=USERS)
    verified = generate.verify_big_user(db.admin_url)
    if not verified["ok"]:
        raise RuntimeError(f"the 10,000-entry user's chain does not verify: {verified}")
    video = _long_video(db)

    from shared.pagination import encode_cursor

    rows: list[dict[str, Any]] = []
    with local_server(db, workers=2, threads=8) as hostport:
        client = Client(hostport)
        token = client.json("POST", "/auth/login", {"email": generate.BIG_USER_EMAIL, "password": generate.PASSWORD})["session"]["token"]
        auth = {"Authorization": f"Bearer {token}"}

        # --- history and export of the 10,000-entry user --------------------------------------
        first = client.json("GET", "/earnings/?limit=50", headers=auth)
        assert len(first["items"]) == 50 and first["items"][0]["seq"] >= generate.BIG_USER_ENTRIES, first["items"][0]
        deepest = f"/earnings/?limit=50&cursor={encode_cursor('earnings', {'seq': 51})}"
        last = client.json("GET", deepest, headers=auth)
        assert [i["seq"] for i in last["items"]] == list(range(50, 0, -1)) and last["next_cursor"] is None
        newest_ms = time_calls(lambda: client.json("GET", "/earnings/?limit=50", headers=auth), n_page, warmup=50)
        deepest_ms = time_calls(lambda: client.json("GET", deepest, headers=auth), n_page, warmup=50)
        exported = client.json("GET", "/earnings/export", headers=auth)
        assert exported["count"] >= generate.BIG_USER_ENTRIES  # plus login bonuses of benchmark runs
        export_ms = time_calls(lambda: client.request("GET", "/earnings/export", headers=auth), n_export, warmup=5)
        rows += [
            summary("history page of 50, newest (10,000-entry user)", newest_ms, "p99 < 10 ms", pct(newest_ms, 99) < 10),
            summary("history page of 50, deepest (seq 50..1)", deepest_ms, "p99 < 10 ms", pct(deepest_ms, 99) < 10),
            summary("export, whole history (10,000 entries)", export_ms, "p50 < 50 ms", statistics.median(export_ms) < 50),
        ]

        # --- heartbeats: 16 clients, 16 users, one stream each -------------------------------
        setup = Client(hostport)
        users = [_signup(setup, "bench-hb") for _ in range(CLIENTS)]

        def heartbeats(i: int, out: list[float]) -> None:
            c = Client(hostport)
            path = f"/progress/{video}"
            session = str(uuid.uuid4())
            c.json("POST", path, {"position_seconds": 0, "playing": True, "client_seq": 0, "session_id": session}, headers=users[i])
            for seq in range(1, n_hb + 1):
                body = {"position_seconds": seq * 0.01, "playing": True, "client_seq": seq, "session_id": session}
                t0 = time.perf_counter()
                c.json("POST", path, body, headers=users[i])
                out.append((time.perf_counter() - t0) * 1000)

        meter = CpuMeter(db, hostport)
        meter.start()
        hb_ms, hb_wall = _concurrent(heartbeats, CLIENTS)
        hb_cpu = meter.stop(len(hb_ms) + CLIENTS)  # each client's first heartbeat is not timed
        hb_tps = len(hb_ms) / hb_wall
        rows.append(
            {**summary(f"progress heartbeat, {CLIENTS} clients", hb_ms, "p99 < 20 ms", pct(hb_ms, 99) < 20), "req/s": round(hb_tps)}
        )

        # --- credit requests pushed to credit_earnings -----------------------------------------
        def credits(i: int, out: list[float]) -> None:
            c = Client(hostport)
            for k in range(n_credit):
                msg_id = uuid.uuid4().hex
                request = {
                    "request_id": msg_id,
                    "user_id": _bench_user_id(2 + (i * n_credit + k) * 7 % (USERS - 1)),
                    "amount_micros": 1_000 + k,
                    "type": "adjustment",
                    "source": "bench-partner",
                }
                body = {
                    "message": {"data": base64.b64encode(json.dumps(request).encode()).decode(), "messageId": msg_id, "attributes": {}},
                    "subscription": "projects/earnpay-local/subscriptions/bench-credit-push",
                }
                headers = {
                    "X-EarnPay-Event-Token": EVENT_TOKEN,
                    "ce-id": msg_id,
                    "ce-specversion": "1.0",
                    "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
                    "ce-source": "//pubsub.googleapis.com/projects/earnpay-local/topics/earnings-credit-requests",
                }
                t0 = time.perf_counter()
                status, data = c.request("POST", "/credit_earnings", body, headers)
                out.append((time.perf_counter() - t0) * 1000)
                if status >= 300:
                    raise RuntimeError(f"credit_earnings -> {status}: {data[:300]!r}")

        credit_ms, credit_wall = _concurrent(credits, CLIENTS)
        rows.append(
            {**summary(f"credit request via /credit_earnings, {CLIENTS} clients", credit_ms), "req/s": round(len(credit_ms) / credit_wall)}
        )

    # --- the reference: pgbench on the same server, server idle ------------------------------------
    tps = _pgbench(db, 5 if quick else 15)
    ratio = hb_tps / tps
    sql_tps = _pgbench_heartbeats(db, video, 5 if quick else 15)
    rows.append({"benchmark": f"pgbench tpcb-like, {CLIENTS} clients (scale {PGBENCH_SCALE})", "req/s": round(tps)})
    rows.append(
        {
            "benchmark": "heartbeat throughput (HTTP) / pgbench TPS",
            "req/s": round(ratio, 2),
            "target": ">= 0.5",
            "met": "yes" if ratio >= 0.5 else "NO",
        }
    )
    rows.append({"benchmark": f"heartbeat statement alone via pgbench, {CLIENTS} clients", "req/s": round(sql_tps)})
    rows.append({"benchmark": "heartbeat statement TPS / pgbench TPS (database side)", "req/s": round(sql_tps / tps, 2)})
    if hb_cpu["server"] is not None:
        # Where a heartbeat's CPU goes when the load generator, the server and PostgreSQL share this
        # machine's cores, and the throughput those cores could give at that cost.
        per_request = sum(v for v in hb_cpu.values() if v is not None)
        cores = os.cpu_count() or 1
        rows += [
            {"benchmark": "heartbeat CPU ms per request: server (Python)", "value": hb_cpu["server"]},
            {"benchmark": "heartbeat CPU ms per request: PostgreSQL", "value": hb_cpu["postgres"]},
            {"benchmark": "heartbeat CPU ms per request: load generator", "value": hb_cpu["client"]},
            {"benchmark": f"heartbeat ceiling on {cores} cores at that cost (req/s)", "value": round(cores * 1000 / per_request)},
            {"benchmark": "CPU ms per request that 0.5 x pgbench would allow", "value": round(cores * 1000 / (0.5 * tps), 2)},
        ]
    print_table("earning: history, export, heartbeats, credits over HTTP (2 workers x 8 threads) vs pgbench", rows)
