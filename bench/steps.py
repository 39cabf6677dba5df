"""Capacity: per-request costs, then Locust steps of simultaneous watchers against the real local server.

    .venv/bin/python -m bench.steps                       # costs + steps 25,50,100,250,500,...,3000
    .venv/bin/python -m bench.steps --steps 100,200 --step-seconds 30     # a short run
    .venv/bin/python -m bench.steps --write-costs         # also rewrite bench/costs.json (the capacity model's input)

Needs the seed-scale data set (bench/generate.py; generated on first use, ~7 minutes). One run:

1. **Costs** (keep-alive clients, 4 threads): CPU per request of each route of the mix, read from
   /proc for the server's processes and PostgreSQL's, against a bare functions-framework no-op served
   the same way (bench/noop.py, gunicorn gthread, same workers and threads) in the same run; the
   whole-history export of the 10,000-entry user (p50).
2. **Steps**: for each number of simultaneous watchers, Locust (bench/locustfile.py) runs headless,
   ramps up, resets its statistics and measures for ``--step-seconds``; the table gives per route
   p50/p95/p99 and failures. The largest step with every floor of the product document met at p99
   (history < 100 ms, progress < 50 ms, login < 200 ms) is the machine's capacity, reported per core.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench import generate
from bench.common import ROOT, SERVER_PGIDS, BenchDb, Client, CpuMeter, bench_database, free_port, local_server, pct

COSTS = Path(__file__).resolve().parent / "costs.json"
FLOORS = {"POST /progress/{video_id}": 50.0, "GET /earnings/": 100.0, "POST /auth/login": 200.0}
VIDEOS = 20
VIDEO_SECONDS = 60  # short videos, so every step includes completions (credits): heavier than the 5-minute mix


def _admin(db: BenchDb) -> Any:
    raw = generate._connect(db.admin_url)
    raw.autocommit = True
    return raw


def _catalogue(db: BenchDb) -> list[str]:
    raw = _admin(db)
    try:
        raw.execute_simple(
            "INSERT INTO videos (slug, title, duration_seconds, reward_micros) "
            f"SELECT 'bench-cap-' || k, 'Capacity video ' || k, {VIDEO_SECONDS}, 1000 FROM generate_series(1, {VIDEOS}) k "
            "ON CONFLICT (slug) DO NOTHING"
        )
        return [str(r[0]) for r in raw.execute_simple("SELECT id::text FROM videos WHERE slug LIKE 'bench-cap-%' ORDER BY slug").rows]
    finally:
        raw.close()


def _mint_sessions(db: BenchDb, first: int, count: int) -> list[str]:
    """One session per generated user ``first..first+count-1`` (a login each would spend argon2id on set-up)."""
    tokens = [secrets.token_urlsafe(32) for _ in range(count)]
    raw = _admin(db)
    try:
        raw.execute_simple(
            "INSERT INTO sessions (user_id, token_hash, idle_timeout, expires_at, ip, user_agent) "
            "SELECT bench_user_id((" + str(first) + " + o - 1)::int), sha256(convert_to(t, 'UTF8')), interval '1 day', "
            "now() + interval '1 day', '127.0.0.1', 'bench-steps' "
            "FROM unnest(ARRAY[" + ",".join(f"'{t}'" for t in tokens) + "]::text[]) WITH ORDINALITY AS x(t, o)"
        )
    finally:
        raw.close()
    return tokens


# --- 1. costs -------------------------------------------------------------------------------------
def _drive(hostport: str, calls: list[tuple[str, str, Any, dict[str, str]]], threads: int = 4) -> list[float]:
    """Sends ``calls`` over ``threads`` keep-alive clients; returns each call's milliseconds (all must be < 500)."""
    out: list[float] = []
    lock = threading.Lock()
    bad: list[str] = []

    def run(part: list[tuple[str, str, Any, dict[str, str]]]) -> None:
        client = Client(hostport)
        mine = []
        for method, path, body, headers in part:
            t0 = time.perf_counter()
            status, data = client.request(method, path, body, headers)
            mine.append((time.perf_counter() - t0) * 1000)
            if status >= 500:
                bad.append(f"{method} {path} -> {status} {data[:200]!r}")
        with lock:
            out.extend(mine)

    parts = [calls[i::threads] for i in range(threads)]
    ts = [threading.Thread(target=run, args=(p,)) for p in parts]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if bad:
        raise RuntimeError(f"{len(bad)} server errors, first: {bad[0]}")
    return out


def _measure(db: BenchDb, hostport: str, calls: list[tuple[str, str, Any, dict[str, str]]], threads: int = 4) -> dict[str, float]:
    meter = CpuMeter(db, hostport)
    meter.start()
    times = _drive(hostport, calls, threads)
    cpu = meter.stop(len(calls))
    return {
        "n": len(calls),
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(pct(times, 99), 2),
        "server_cpu_ms": cpu["server"] or 0.0,
        "db_cpu_ms": cpu["postgres"] or 0.0,
    }


def _noop_server(db: BenchDb) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.noop", "--port", str(port), "--workers", "2", "--threads", "8"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    hostport = f"127.0.0.1:{port}"
    SERVER_PGIDS[hostport] = proc.pid
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if Client(hostport).request("GET", "/")[0] == 204:
                return hostport, proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the no-op server did not start")


def costs(db: BenchDb, hostport: str, videos: list[str], quick: bool) -> dict[str, Any]:
    n = 300 if quick else 2000
    tokens = _mint_sessions(db, 100_001, 200)
    big = _mint_sessions(db, 1, 1)[0]
    hdr = [{"Authorization": f"Bearer {t}", "Content-Type": "application/json"} for t in tokens]
    big_hdr = {"Authorization": f"Bearer {big}"}
    results: dict[str, dict[str, float]] = {}

    # the reference: a bare functions-framework no-op served the same way
    noop_hostport, noop_proc = _noop_server(db)
    try:
        _drive(noop_hostport, [("GET", "/", None, {})] * 200)
        results["noop"] = _measure(db, noop_hostport, [("GET", "/", None, {})] * n)
    finally:
        import signal

        os.killpg(noop_proc.pid, signal.SIGTERM)
        noop_proc.wait(timeout=15)
        SERVER_PGIDS.pop(noop_hostport, None)

    # heartbeats: each of 200 users watches one long stream; every call moves 10 s on
    seq = dict.fromkeys(range(len(tokens)), 0)
    streams = [f"00000000-0000-4000-8000-{i:012d}" for i in range(len(tokens))]

    def hb_calls(count: int) -> list[tuple[str, str, Any, dict[str, str]]]:
        calls = []
        for k in range(count):
            u = k % len(tokens)
            seq[u] += 1
            body = {"position_seconds": min(seq[u] * 10, 59), "playing": True, "client_seq": seq[u], "session_id": streams[u]}
            calls.append(("POST", f"/progress/{videos[u % len(videos)]}", body, hdr[u]))
        return calls

    _drive(hostport, hb_calls(400))  # warm-up: pools, prepared statements
    results["heartbeat"] = _measure(db, hostport, hb_calls(n))
    results["options"] = _measure(db, hostport, [("OPTIONS", "/auth/session", None, {})] * n)
    results["catalogue"] = _measure(db, hostport, [("GET", "/videos/", None, hdr[k % len(hdr)]) for k in range(n)])
    results["profile"] = _measure(db, hostport, [("GET", "/auth/me", None, hdr[k % len(hdr)]) for k in range(n)])
    results["history"] = _measure(db, hostport, [("GET", "/earnings/?limit=50", None, hdr[k % len(hdr)]) for k in range(n)])
    results["stats"] = _measure(db, hostport, [("GET", "/earnings/stats", None, hdr[k % len(hdr)]) for k in range(n)])
    results["payout"] = _measure(
        db,
        hostport,
        [("POST", "/payouts/", {"amount_cents": 1000, "password": generate.PASSWORD}, hdr[k % len(hdr)]) for k in range(n // 10)],
    )
    logins: list[tuple[str, str, Any, dict[str, str]]] = [
        ("POST", "/auth/login", {"email": f"bench-gen-{i}@example.com", "password": generate.PASSWORD}, {}) for i in range(2, 2 + n // 10)
    ]
    results["login"] = _measure(db, hostport, logins)
    _drive(hostport, [("GET", "/earnings/export", None, big_hdr)] * 5)
    # One export at a time: the goal is one export's time (p50 < 50 ms). Four at once on a 2-core
    # machine measure the queue for the cores (each export needs ~30 ms of PostgreSQL CPU).
    results["export"] = _measure(db, hostport, [("GET", "/earnings/export", None, big_hdr)] * (30 if quick else 200), threads=1)
    return results


# --- 2. steps -------------------------------------------------------------------------------------
def _locust(hostport: str, users: int, seconds: int, env: dict[str, str], out: Path) -> dict[str, dict[str, Any]]:
    rate = max(1, users // 10)  # every watcher started within 10 s, each at its own phase (locustfile.py)
    ramp = 10 + 10
    cmd = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
        "-u", str(users), "-r", str(rate), "-t", f"{ramp + seconds}s", "--host", f"http://{hostport}",
        "--csv", str(out), "--reset-stats", "--only-summary", "--stop-timeout", "5", "--loglevel", "WARNING",
    ]  # fmt: skip
    subprocess.run(cmd, cwd=ROOT, env=env, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=ramp + seconds + 120)
    rows: dict[str, dict[str, Any]] = {}
    with open(f"{out}_stats.csv") as fh:
        for r in csv.DictReader(fh):
            if r["Name"] == "Aggregated":
                continue
            n = int(r["Request Count"])
            rows[r["Name"]] = {
                "requests": n,
                "failures": int(r["Failure Count"]),
                "rps": round(float(r["Requests/s"]), 1),
                "p50": float(r["50%"]) if n else None,
                "p95": float(r["95%"]) if n else None,
                "p99": float(r["99%"]) if n else None,
            }
    return rows


def steps(db: BenchDb, hostport: str, videos: list[str], counts: list[int], seconds: int, run_all: bool = False) -> list[dict[str, Any]]:
    tmp = Path(tempfile.mkdtemp(prefix="earnpay-steps-"))
    tokens = _mint_sessions(db, 2, max(counts))
    (tmp / "tokens").write_text("\n".join(tokens))
    (tmp / "videos").write_text("\n".join(videos))
    env = dict(os.environ, BENCH_TOKENS=str(tmp / "tokens"), BENCH_VIDEOS=str(tmp / "videos"), PYTHONPATH=str(ROOT))
    results = []
    for users in counts:
        meter = CpuMeter(db, hostport)
        meter.start()
        t0 = time.monotonic()
        routes = _locust(hostport, users, seconds, env, tmp / f"step-{users}")
        wall = time.monotonic() - t0
        total = sum(r["requests"] for r in routes.values())
        cpu = meter.stop(max(1, total))
        misses = [name for name, floor in FLOORS.items() if routes.get(name, {}).get("p99") is not None and routes[name]["p99"] >= floor]
        failures = sum(r["failures"] for r in routes.values())
        results.append({"watchers": users, "routes": routes, "floors_met": not misses and not failures, "misses": misses,
                        "failures": failures, "wall_s": round(wall), "cpu_ms_per_request": cpu})  # fmt: skip
        print(
            f"step {users}: {'floors met' if not misses and not failures else 'MISSED ' + ', '.join(misses)}; {failures} failures",
            flush=True,
        )
        hb_missed = [r["watchers"] for r in results[-2:] if "POST /progress/{video_id}" in r["misses"]]
        if len(hb_missed) == 2 and not run_all:
            break  # two steps in a row past the heartbeat's floor: the knee is behind us
    return results


def _goals(cost: dict[str, Any]) -> list[str]:
    """Issue 13's per-request goals, from the costs of this run."""
    hb, noop, export = cost.get("heartbeat"), cost.get("noop"), cost.get("export")
    rows: list[str] = []
    if hb and noop and noop["server_cpu_ms"]:
        ratio = hb["server_cpu_ms"] / noop["server_cpu_ms"]
        rows.append(
            f"| server CPU per heartbeat <= 1.5x a functions-framework no-op | {hb['server_cpu_ms']} / {noop['server_cpu_ms']} ms"
            f" = {ratio:.2f}x | {'yes' if ratio <= 1.5 else '**no**'} |"
        )
    if hb:
        rows.append(f"| PostgreSQL CPU per heartbeat <= 0.5 ms | {hb['db_cpu_ms']} ms | {'yes' if hb['db_cpu_ms'] <= 0.5 else '**no**'} |")
    if export:
        rows.append(
            f"| export p50 < 50 ms at 10,000 entries (one at a time) | {export['p50_ms']} ms (p99 {export['p99_ms']};"
            f" CPU: server {export['server_cpu_ms']}, PostgreSQL {export['db_cpu_ms']} ms)"
            f" | {'yes' if export['p50_ms'] < 50 else '**no**'} |"
        )
    return ["", "| goal (issue 13) | measured | met |", "|---|---|---|", *rows] if rows else []


def _markdown(cost: dict[str, Any], stepped: list[dict[str, Any]]) -> str:
    lines = ["| request | n | p50 ms | p99 ms | server CPU ms | PostgreSQL CPU ms |", "|---|---|---|---|---|---|"]
    for name, c in cost.items():
        lines.append(f"| {name} | {c['n']} | {c['p50_ms']} | {c['p99_ms']} | {c['server_cpu_ms']} | {c['db_cpu_ms']} |")
    lines += _goals(cost)
    lines += [
        "",
        "| watchers | route | requests | failures | req/s | p50 | p95 | p99 | floor met |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for s in stepped:
        for name in sorted(s["routes"]):
            r = s["routes"][name]
            floor = FLOORS.get(name)
            met = "" if floor is None or r["p99"] is None else ("yes" if r["p99"] < floor else "**no**")
            cells = [s["watchers"], name, r["requests"], r["failures"], r["rps"], r["p50"], r["p95"], r["p99"], met]
            lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    ok = [s["watchers"] for s in stepped if s["floors_met"]]
    best = max(ok) if ok else 0
    cores = os.cpu_count() or 1
    lines.append("")
    for route, floor in FLOORS.items():
        within = [
            s["watchers"] for s in stepped if (s["routes"].get(route) or {}).get("p99") is not None and s["routes"][route]["p99"] < floor
        ]
        lines.append(f"largest step with {route} p99 < {floor:.0f} ms: {max(within) if within else 0} watchers")
    lines += ["", f"largest step with every floor met at p99: {best} watchers on {cores} cores = {best / cores:.0f} watchers per core"]
    return "\n".join(lines)


def _settle(db: BenchDb) -> None:
    """VACUUM (ANALYZE) the benchmark database before measuring (~20 s). PostgreSQL's CPU per request is
    counted over all its processes, autovacuum workers included: without this, an autovacuum of an
    earlier run's writes (200,000 balances rows, say) landed in the measured requests' share."""
    raw = _admin(db)  # autocommit: VACUUM refuses a transaction block
    try:
        raw.execute_simple("VACUUM (ANALYZE)")
    finally:
        raw.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.steps", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", default="25,50,100,250,500,1000,1500,2000,3000", help="simultaneous watchers per step")
    parser.add_argument("--step-seconds", type=int, default=60, help="measured seconds per step (after the ramp)")
    parser.add_argument("--no-costs", action="store_true")
    parser.add_argument(
        "--all-steps", action="store_true", help="run every step (default: stop after two in a row past the heartbeat floor)"
    )
    parser.add_argument("--no-steps", action="store_true")
    parser.add_argument("--quick", action="store_true", help="fewer cost samples (a smoke run, not for reporting)")
    parser.add_argument("--write-costs", action="store_true", help="rewrite bench/costs.json from this run")
    parser.add_argument("--json", default=None, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)

    db = bench_database()
    if not generate.loaded(db.admin_url, 200_000):
        print("generating the seed-scale data set (200,000 users, ~10 million entries; once)...", flush=True)
        generate.generate(db.admin_url, users=200_000)
    videos = _catalogue(db)
    _settle(db)
    cost: dict[str, Any] = {}
    stepped: list[dict[str, Any]] = []
    with local_server(db, workers=2, threads=8) as hostport:
        if not args.no_costs:
            cost = costs(db, hostport, videos, args.quick)
        if not args.no_steps:
            stepped = steps(db, hostport, videos, [int(x) for x in args.steps.split(",")], args.step_seconds, args.all_steps)
    print(_markdown(cost, stepped))
    if args.json:
        Path(args.json).write_text(json.dumps({"costs": cost, "steps": stepped}, indent=1, default=str))
    if args.write_costs and cost:
        model = json.loads(COSTS.read_text())
        model["source"] = f"python -m bench.steps, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} shared cores (bench/README.md)"
        for route, c in cost.items():
            if route in model["routes"]:
                # A request holds its connection for at most its whole duration: p50 is the upper bound used.
                model["routes"][route] = {"server_cpu_ms": c["server_cpu_ms"], "db_cpu_ms": c["db_cpu_ms"], "db_hold_ms": c["p50_ms"]}
        COSTS.write_text(json.dumps(model, indent=2) + "\n")
        print(f"wrote {COSTS.relative_to(ROOT)}; now run `python -m bench.capacity --write`")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
