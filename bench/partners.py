"""Partner callbacks over real HTTP to the real local server: signed offerwall postbacks and AdMob-style SSV.

* reference: the same server's unauthenticated no-op, ``OPTIONS`` on the offerwall route (our router, no
  database), measured in the same run;
* offerwall postback, a new transaction each (HMAC-SHA256 over the canonical parameters, the secret from the
  configured store and the instance's cache, the throttle check, the reward credited pending, the callback
  recorded), its redelivery (answered ``duplicate``), and a forged one (refused and recorded);
* rewarded-video SSV, a new transaction each (ECDSA P-256 over the query string, the key from the instance's
  cache of the network's key endpoint, served by a local stand-in);
* throughput of new offerwall postbacks and of the no-op from ``--clients`` keep-alive clients at once.

Queries are signed before the clock starts: the partner's signing cost is not ours. The server keeps its
secrets in the database store (``SECRET_STORE=database``, as ``make serve`` does): in production a secret is
read from Secret Manager once per instance and cached (docs/partners.md), so the steady state is the same.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.common import Client, bench_database, local_server, pct, print_table, summary, time_calls
from tests.partners.support import KeyServer, admob_query, offerwall_query

PASSWORD = "benchmark password 123"
SECRET = bytes(range(32))
PARTNER_SQL = """
INSERT INTO partners (id, name, kind, enabled, reward_micros_per_unit, revenue_micros_per_unit, max_units, daily_cap_micros,
                      clearing_hours, key_url)
VALUES (:id, 'Bench ' || :kind, :kind, true, 1000, 1500, 1000, 1000000000000, 72, :key_url)
"""


def _setup(db: Any, key_url: str) -> tuple[str, str]:
    """An offerwall (with its secret, stored as the server's store would) and a rewarded-video partner."""
    from functions.partners import service
    from shared.config import get_settings
    from shared.db import Conn, Query, connect_url

    ow, rv = f"bench-ow-{uuid.uuid4().hex[:8]}", f"bench-rv-{uuid.uuid4().hex[:8]}"
    conn = Conn(connect_url(db.admin_url), get_settings())
    try:
        insert = Query("bench_partner_insert", PARTNER_SQL, prepared=False)
        conn.execute(insert, id=ow, kind="offerwall", key_url=None)
        conn.execute(insert, id=rv, kind="rewarded_video", key_url=key_url)
        envelope = service.secret_store().add_version(ow, SECRET)
        conn.execute(
            Query(
                "bench_partner_secret",
                "INSERT INTO partner_secrets (partner_id, version, store, envelope) VALUES (:p, 1, 'database', CAST(:e AS jsonb))",
                prepared=False,
            ),
            p=ow,
            e=envelope,
        )
    finally:
        conn.raw.close()
    return ow, rv


def _throughput(hostport: str, paths: list[str], clients: int) -> tuple[float, list[float]]:
    """Requests/s of ``clients`` keep-alive clients sharing ``paths`` (each sent once), and every latency."""
    lock = threading.Lock()
    todo = iter(paths)
    latencies: list[float] = []
    errors: list[str] = []

    def worker() -> None:
        client = Client(hostport)
        while True:
            with lock:
                path = next(todo, None)
            if path is None:
                return
            method = "OPTIONS" if path.startswith("OPTIONS ") else "GET"
            t0 = time.perf_counter()
            status, body = client.request(method, path.removeprefix("OPTIONS "))
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)
                if status not in (200, 204):
                    errors.append(f"{status} {body[:200]!r}")

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
    return len(paths) / seconds, latencies


def _sender(client: Client, paths: list[str], expect: int) -> Callable[[], None]:
    todo = iter(paths)

    def send() -> None:
        status, body = client.request("GET", next(todo))
        if status != expect:
            raise RuntimeError(f"expected {expect}, got {status}: {body[:300]!r}")

    return send


def main(args: argparse.Namespace) -> None:
    n = 200 if args.quick else 2000
    clients = 8
    db = bench_database()
    keys = KeyServer()
    key = keys.add_key("1")
    extra = {"SECRET_STORE": "database", "PARTNER_BAD_CALLBACK_LIMIT": "1000000000"}
    try:
        ow, rv = _setup(db, keys.url)
        with local_server(db, extra_env=extra) as hostport:
            client = Client(hostport)
            users = []
            for i in range(20):
                email = f"bench-partner-{uuid.uuid4().hex[:10]}@example.com"
                client.json("POST", "/auth/signup", {"email": email, "password": PASSWORD, "display_name": f"Bench {i}"}, expect=202)
                users.append(client.json("POST", "/auth/login", {"email": email, "password": PASSWORD})["user"]["id"])

            def ow_paths(count: int, tag: str, secret: bytes = SECRET) -> list[str]:
                return [
                    f"/partner_callbacks/offerwall/{ow}?"
                    + offerwall_query(secret, user_id=users[i % len(users)], transaction_id=f"{tag}-{uuid.uuid4().hex}", amount=1)
                    for i in range(count)
                ]

            warm = 50
            noop_ms = time_calls(lambda: client.request("OPTIONS", f"/partner_callbacks/offerwall/{ow}"), n, warmup=warm)
            new_ow = ow_paths(n + warm, "ow")
            ow_ms = time_calls(_sender(client, new_ow, 200), n, warmup=warm)
            dup_ms = time_calls(_sender(client, new_ow, 200), n, warmup=warm)  # the same postbacks again
            forged_ms = time_calls(_sender(client, ow_paths(n + warm, "forged", b"not the secret"), 400), n, warmup=warm)
            ssv = [
                f"/partner_callbacks/rewarded-video/{rv}?"
                + admob_query(key, "1", user_id=users[i % len(users)], transaction_id=uuid.uuid4().hex, amount=1, custom_data=None)
                for i in range(n + warm)
            ]
            ssv_ms = time_calls(_sender(client, ssv, 200), n, warmup=warm)

            noop_rps, noop_conc = _throughput(hostport, [f"OPTIONS /partner_callbacks/offerwall/{ow}"] * n, clients)
            ow_rps, ow_conc = _throughput(hostport, ow_paths(n, "conc"), clients)
    finally:
        keys.close()

    def ratio(samples: list[float]) -> str:
        return f"{pct(samples, 50) / pct(noop_ms, 50):.1f}x"

    rows = [
        {**summary("no-op: OPTIONS on the offerwall route (reference)", noop_ms), "x no-op p50": "1.0x"},
        {**summary("offerwall postback, new transaction (credited)", ow_ms), "x no-op p50": ratio(ow_ms)},
        {**summary("offerwall postback, redelivered (duplicate)", dup_ms), "x no-op p50": ratio(dup_ms)},
        {**summary("offerwall postback, forged (refused, recorded)", forged_ms), "x no-op p50": ratio(forged_ms)},
        {**summary("rewarded-video SSV, new transaction (credited)", ssv_ms), "x no-op p50": ratio(ssv_ms)},
    ]
    print_table("partners: callbacks over HTTP (1 client, keep-alive)", rows)
    print_table(
        f"partners: throughput, {clients} keep-alive clients",
        [
            {"benchmark": "no-op OPTIONS (reference)", "n": n, "req/s": round(noop_rps), "p50 ms": round(pct(noop_conc, 50), 2),
             "p99 ms": round(pct(noop_conc, 99), 2), "x no-op": "1.00"},
            {"benchmark": "offerwall postback, new transaction", "n": n, "req/s": round(ow_rps), "p50 ms": round(pct(ow_conc, 50), 2),
             "p99 ms": round(pct(ow_conc, 99), 2), "x no-op": f"{ow_rps / noop_rps:.2f}"},
        ],
    )  # fmt: skip
