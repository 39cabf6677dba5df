"""Login (argon2id) and the overhead of an authenticated no-op request, over real HTTP.

* login: ``POST /auth/login`` for existing users (argon2id verify, attempt record, session, daily
  bonus) — target p99 under 100 ms;
* authentication overhead: ``GET /auth/session`` (session check + per-user rate limit, nothing
  else) minus the same server's unauthenticated no-op ``OPTIONS /auth/session``, measured in the
  same run — target p99 under 3 ms.
"""

from __future__ import annotations

import argparse
import uuid

from bench.common import Client, bench_database, local_server, pct, print_table, summary, time_calls

PASSWORD = "benchmark password 123"


def main(args: argparse.Namespace) -> None:
    n_login = 60 if args.quick else 400
    n_noop = 300 if args.quick else 3000
    db = bench_database()
    with local_server(db) as hostport:
        client = Client(hostport)
        users = []
        for i in range(20):
            email = f"bench-auth-{uuid.uuid4().hex[:10]}@example.com"
            client.json("POST", "/auth/signup", {"email": email, "password": PASSWORD, "display_name": f"Bench {i}"}, expect=202)
            users.append(email)
        counter = iter(range(10**9))

        def login() -> None:
            i = next(counter)
            client.json(
                "POST", "/auth/login", {"email": users[i % len(users)], "password": PASSWORD}, headers={"X-Forwarded-For": "10.1.1.1"}
            )

        login_ms = time_calls(login, n_login, warmup=10)
        token = client.json("POST", "/auth/login", {"email": users[0], "password": PASSWORD})["session"]["token"]
        auth = {"Authorization": f"Bearer {token}"}
        noop_ms = time_calls(lambda: client.request("OPTIONS", "/auth/session"), n_noop, warmup=100)
        authed_ms = time_calls(lambda: client.json("GET", "/auth/session", headers=auth), n_noop, warmup=100)

    overhead_p50 = pct(authed_ms, 50) - pct(noop_ms, 50)
    overhead_p99 = pct(authed_ms, 99) - pct(noop_ms, 99)
    rows = [
        summary("login (argon2id 19 MiB, t=2)", login_ms, "p99 < 100 ms", pct(login_ms, 99) < 100),
        summary("no-op, unauthenticated (reference)", noop_ms),
        summary("no-op, authenticated (session + rate limit)", authed_ms),
        {
            "benchmark": "authentication overhead (difference)",
            "n": len(authed_ms),
            "p50 ms": round(overhead_p50, 3),
            "p99 ms": round(overhead_p99, 3),
            "target": "p99 < 3 ms",
            "met": "yes" if overhead_p99 < 3 else "NO",
        },
    ]
    print_table("auth: login and authentication overhead over HTTP (1 client, keep-alive)", rows)
