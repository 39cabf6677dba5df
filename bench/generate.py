"""The earning benchmark's data set: 200,000 users and ~10 million ledger entries, generated in PostgreSQL.

``python -m bench.generate [--users N] [--force]`` (``python -m bench earning`` runs it when needed).

Everything is set-based SQL run as the schema owner: users from ``generate_series``; entries per
user from ``generate_series(1, n)`` with ``seq``, ``balance_after`` (a running ``sum() OVER``) and
the hash chain computed by a running custom aggregate used as a window function
(``sha256(prev || entry text)`` over the user's entries in ``seq`` order: exactly what
``ledger_entry_hash`` computes), then ``prev_hash`` by ``lag()``. Users go in chunks, on two
connections in parallel, each chunk in one statement that also writes the users' balance rows.

What it guarantees (``verify-ledger`` passes for every generated user):
  * every chain verifies: seq 1..n without gaps, prev_hash = the previous hash, hash recomputes;
  * balance_after is the running sum; balances.available = lifetime_earned = the sum, entry_count = n,
    last_entry_hash = the newest hash;
  * timestamps spread over the past year, strictly increasing with seq per user;
  * only credits (video rewards ~80 %, login bonus ~12 %, streak bonus ~5 %, referral commission ~3 %):
    no holds, so no balance ever needs a floor.
User 1 (``bench-gen-1@example.com``) has exactly 10,000 entries; the others 1..99 (50 on average).
Every generated user's password is ``PASSWORD``. The load is recorded in ``bench_dataset`` and
skipped next time when the recorded size matches.

FK and trigger checks are skipped for the load (``session_replication_role = replica``: superuser,
benchmark database only); the data satisfies them anyway, as the chain/balance checks show.
"""

from __future__ import annotations

import argparse
import queue
import sys
import threading
import time
from typing import Any

PASSWORD = "benchmark password 123"
BIG_USER_EMAIL = "bench-gen-1@example.com"
BIG_USER_ENTRIES = 10_000
CHUNK_USERS = 5_000
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
_ZERO = "'\\x" + "00" * 32 + "'::bytea"

SETUP = f"""
CREATE TABLE IF NOT EXISTS bench_dataset (users INTEGER NOT NULL, entries BIGINT NOT NULL, loaded_at TIMESTAMPTZ NOT NULL);
CREATE OR REPLACE FUNCTION bench_chain_step(state BYTEA, item TEXT) RETURNS BYTEA
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT sha256(state || convert_to(item, 'UTF8')) $$;
DROP AGGREGATE IF EXISTS bench_chain(TEXT);
CREATE AGGREGATE bench_chain(TEXT) (SFUNC = bench_chain_step, STYPE = BYTEA, INITCOND = '\\x{"00" * 32}');
CREATE OR REPLACE FUNCTION bench_user_id(i INTEGER) RETURNS UUID
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT md5('earnpay-bench-user-' || i)::uuid $$;
CREATE OR REPLACE FUNCTION bench_user_entries(i INTEGER) RETURNS INTEGER
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT CASE WHEN i = 1 THEN {BIG_USER_ENTRIES} ELSE 1 + (i * 7919) % 99 END $$;
"""

USERS = """
INSERT INTO users (id, email, canonical_email, password_hash, display_name, referral_code, created_at, updated_at, password_changed_at)
SELECT bench_user_id(i), 'bench-gen-' || i || '@example.com', 'bench-gen-' || i || '@example.com', %(hash)s, 'Bench user ' || i,
       'Z' || (SELECT string_agg(substr(%(alphabet)s, ((i / (31::bigint ^ k)::bigint) %% 31)::int + 1, 1), '' ORDER BY k)
                 FROM generate_series(0, 6) k),
       now() - interval '400 days', now() - interval '400 days', now() - interval '400 days'
  FROM generate_series(1, %(users)s) i
ON CONFLICT DO NOTHING
"""

# One chunk of users [lo, hi]: entries with seq, running balance and hash chain, plus balance rows.
CHUNK = f"""
WITH gen AS (
    SELECT u.id AS user_id, g AS seq, r.type, r.amount,
           sum(r.amount) OVER (PARTITION BY u.id ORDER BY g) AS balance_after,
           'bench:' || g AS idempotency_key,
           CASE WHEN r.type = 'video_reward' THEN md5('video-' || (g %% 400))::uuid::text END AS reference,
           date_trunc('microseconds', now() - interval '365 days'
               + ((g - 1) + 0.05 + 0.9 * random()) * (interval '365 days' / bench_user_entries(i))) AS created_at
      FROM generate_series(%(lo)s, %(hi)s) i
      JOIN users u ON u.id = bench_user_id(i)
      CROSS JOIN LATERAL generate_series(1, bench_user_entries(i)) g
      CROSS JOIN LATERAL (
          SELECT CASE WHEN x < 0.80 THEN 'video_reward' WHEN x < 0.92 THEN 'login_bonus'
                      WHEN x < 0.97 THEN 'streak_bonus' ELSE 'referral_commission' END AS type,
                 CASE WHEN x < 0.80 THEN 2500 + (x * 59375)::bigint WHEN x < 0.92 THEN 10000
                      WHEN x < 0.97 THEN 20000 ELSE 500 + ((x - 0.97) * 150000)::bigint END AS amount
            FROM (SELECT random() + g * 0 AS x) rnd
      ) r
), chained AS (
    SELECT *, bench_chain(concat_ws('|', user_id::text, seq::text, type, amount::text, balance_after::text, idempotency_key,
                                    floor(extract(epoch FROM created_at) * 1000000)::bigint::text))
                OVER (PARTITION BY user_id ORDER BY seq ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS hash
      FROM gen
), ins AS (
    INSERT INTO earnings (user_id, seq, type, amount, balance_after, idempotency_key, source, reference, prev_hash, hash, created_at)
    SELECT user_id, seq, type, amount, balance_after, idempotency_key, 'bench', reference,
           coalesce(lag(hash) OVER (PARTITION BY user_id ORDER BY seq), {_ZERO}), hash, created_at
      FROM chained
     ORDER BY user_id, seq
    RETURNING user_id, seq, balance_after, hash, created_at
)
INSERT INTO balances AS b (user_id, available, lifetime_earned, entry_count, last_entry_hash, updated_at)
SELECT DISTINCT ON (user_id) user_id, balance_after, balance_after, seq, hash, created_at
  FROM ins
 ORDER BY user_id, seq DESC
ON CONFLICT (user_id) DO UPDATE
   SET available = EXCLUDED.available, lifetime_earned = EXCLUDED.lifetime_earned, entry_count = EXCLUDED.entry_count,
       last_entry_hash = EXCLUDED.last_entry_hash, updated_at = EXCLUDED.updated_at
"""


def _connect(url: str) -> Any:
    from shared.db import connect_url

    raw = connect_url(url)
    raw.autocommit = True
    return raw


def _sql(raw: Any, sql: str, **params: Any) -> Any:
    """Runs SQL with %(name)s parameters substituted as literals (trusted, generated values only)."""
    if params:
        sql = sql % {k: (f"'{v}'" if isinstance(v, str) else str(v)) for k, v in params.items()}
    return raw.execute_simple(sql)


def loaded(admin_url: str, users: int) -> bool:
    raw = _connect(admin_url)
    try:
        ctx = raw.execute_simple("SELECT to_regclass('bench_dataset') IS NOT NULL")
        if not ctx.rows[0][0]:
            return False
        ctx = raw.execute_simple("SELECT users FROM bench_dataset ORDER BY loaded_at DESC LIMIT 1")
        return bool(ctx.rows) and int(ctx.rows[0][0]) == users
    finally:
        raw.close()


def generate(admin_url: str, *, users: int = 200_000, workers: int = 2, verbose: bool = True) -> dict[str, Any]:
    """Loads the data set (see the module docstring); returns counts and timings."""
    from functions.auth.passwords import hash_password

    say = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    raw = _connect(admin_url)
    # The benchmark server only: fewer checkpoints during a 10-million-row load (full-page writes
    # would double the WAL). A reload setting, no restart.
    raw.execute_simple("ALTER SYSTEM SET max_wal_size = '8GB'")
    raw.execute_simple("SELECT pg_reload_conf()")
    raw.execute_simple(SETUP)
    existing = raw.execute_simple("SELECT count(*) FROM users WHERE email LIKE 'bench-gen-%'").rows[0][0]
    if existing:
        raise RuntimeError(
            f"{existing} generated users exist but no matching bench_dataset row: drop the benchmark database "
            "(python -m bench.generate --force) and load again"
        )
    pw_hash = hash_password(PASSWORD).replace("'", "''")
    raw.execute_simple("SET session_replication_role = replica")
    _sql(raw, USERS, hash=pw_hash, alphabet=_ALPHABET, users=users)
    t_users = time.perf_counter() - t0
    say(f"users: {users:,} in {t_users:.1f} s", flush=True)
    raw.close()

    chunks: queue.Queue[tuple[int, int]] = queue.Queue()
    for lo in range(1, users + 1, CHUNK_USERS):
        chunks.put((lo, min(users, lo + CHUNK_USERS - 1)))
    errors: list[BaseException] = []
    done = [0]

    def worker() -> None:
        conn = _connect(admin_url)
        conn.execute_simple("SET session_replication_role = replica; SET synchronous_commit = off; SET work_mem = '256MB'")
        try:
            while not errors:
                try:
                    lo, hi = chunks.get_nowait()
                except queue.Empty:
                    return
                _sql(conn, CHUNK, lo=lo, hi=hi)
                done[0] += hi - lo + 1
                say(f"  entries for users {lo:,}..{hi:,} ({done[0]:,}/{users:,}) at {time.perf_counter() - t0:.0f} s", flush=True)
        except BaseException as exc:
            errors.append(exc)
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    t_entries = time.perf_counter() - t0 - t_users
    raw = _connect(admin_url)
    say("vacuum analyze (visibility map for index-only scans)...", flush=True)
    raw.execute_simple("VACUUM (ANALYZE) earnings")
    raw.execute_simple("VACUUM (ANALYZE) balances")
    raw.execute_simple("ANALYZE users")
    entries = raw.execute_simple(
        "SELECT sum(entry_count) FROM balances b JOIN users u ON u.id = b.user_id WHERE u.email LIKE 'bench-gen-%'"
    )
    n_entries = int(entries.rows[0][0])
    raw.execute_simple(f"INSERT INTO bench_dataset (users, entries, loaded_at) VALUES ({users}, {n_entries}, now())")
    raw.close()
    total = time.perf_counter() - t0
    say(f"entries: {n_entries:,} in {t_entries:.1f} s; total with vacuum {total:.1f} s", flush=True)
    return {"users": users, "entries": n_entries, "seconds": round(total, 1)}


def verify_big_user(app_or_admin_url: str) -> dict[str, Any]:
    """verify-ledger for the 10,000-entry user (chain and balance)."""
    from functions.ledger import service as ledger
    from shared.config import get_settings
    from shared.db import Conn

    raw = _connect(app_or_admin_url)
    try:
        conn = Conn(raw, get_settings())
        user_id = raw.execute_simple(f"SELECT id::text FROM users WHERE email = '{BIG_USER_EMAIL}'").rows[0][0]
        return ledger.verify(conn, user_id=user_id)
    finally:
        raw.close()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.generate", description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--force", action="store_true", help="drop and recreate the benchmark database first")
    parser.add_argument("--database", default="earnpay_bench")
    args = parser.parse_args(argv)
    from bench.common import bench_database

    db = bench_database(args.database)
    if args.force:
        raw = _connect(db.server_url)
        raw.execute_simple(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        raw.close()
        db = bench_database(args.database)
    if loaded(db.admin_url, args.users):
        print("already loaded")
    else:
        generate(db.admin_url, users=args.users)
    print(verify_big_user(db.admin_url))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
