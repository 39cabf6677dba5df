"""Payout batches: 1,000 approved payouts through the sandbox provider (no artificial delay), per batch.

The batch worker runs in-process (as the ``process_payouts`` function does) against the benchmark
PostgreSQL as the application role: claim (FOR UPDATE SKIP LOCKED, mark submitted), decrypt each
method and call the provider outside any transaction, record paid outcomes and the ledger's paid-out
counters. Set-up (users, methods, funds, 1,000 requests with their ledger holds, approvals) is
untimed and done in SQL as the schema owner. Target: under 500 ms per batch of 1,000.

Reference measured in the same run: 1,000 prepared ``SELECT 1`` round trips on one connection.
"""

from __future__ import annotations

import argparse
import json
import time
import uuid

from bench.common import bench_database, pct, print_table, summary

PROVIDER_LATENCY_S = 0.02
BATCH = 1000
USERS = 100

SETUP_USERS = """
INSERT INTO users (id, email, password_hash, display_name, referral_code, kyc_status)
SELECT gen_random_uuid(), 'bench-payout-' || md5(random()::text) || '@example.com', 'x', 'Bench payee',
       (SELECT string_agg(substr('23456789ABCDEFGHJKMNPQRSTUVWXYZ', 1 + floor(random() * 31)::int, 1), '')
          FROM generate_series(1, 8) WHERE g > 0),
       'verified'
  FROM generate_series(1, {n}) AS g
RETURNING id::text
"""

# 1,000 requests spread over the users, their holds (the ledger function, as the app does), approvals.
MAKE_APPROVED = """
WITH req AS (
    INSERT INTO payout_requests (id, user_id, method_id, method_type, method_label, amount_cents, currency, last_actor, last_reason)
    SELECT gen_random_uuid(), m.user_id, m.id, m.type, m.label, 1000 + (g % 500), 'USD', m.user_id::text, 'bench'
      FROM generate_series(1, {n}) AS g
      JOIN (SELECT row_number() OVER (ORDER BY id) - 1 AS k, * FROM payout_methods WHERE label = 'PayPal b***h@example.com') m
        ON m.k = g % {users}
    RETURNING id, user_id, amount_cents
), held AS (
    SELECT count(*) AS n FROM (
        SELECT ledger_post(user_id, 'payout_hold', -amount_cents * 10000, 'payout_hold:' || id, 'payouts', id::text, NULL)
          FROM req ORDER BY user_id
    ) x
)
SELECT (SELECT n FROM held), json_agg(id::text)::text FROM req
"""
APPROVE = """
UPDATE payout_requests SET status = 'approved', decided_at = now(), decided_by = user_id, last_actor = 'bench', last_reason = 'approved'
 WHERE id = ANY(CAST(%s AS uuid[]))
"""


def _setup(admin_url: str) -> None:
    """Bench payees with one encrypted PayPal method each and plenty of money (once per database)."""
    from shared.crypto import encrypt_json
    from shared.db import connect_url

    raw = connect_url(admin_url)
    raw.autocommit = True
    cur = raw.cursor()
    cur.execute("SELECT count(*) FROM payout_methods WHERE label = 'PayPal b***h@example.com'")
    have = cur.fetchone()[0]
    if have < USERS:
        cur.execute(SETUP_USERS.format(n=USERS - have))
        ids = [r[0] for r in cur.fetchall()]
        for uid in ids:
            envelope = encrypt_json({"email": "bench-payee@example.com"}, aad=f"payout_method:{uid}")
            cur.execute(
                "INSERT INTO payout_methods (user_id, type, label, details, is_default) VALUES (%s, 'paypal', %s, CAST(%s AS jsonb), true)",
                (uid, "PayPal b***h@example.com", json.dumps(envelope)),
            )
            cur.execute(
                "SELECT ledger_post(CAST(%s AS uuid), 'adjustment', %s, %s, 'bench', NULL, NULL)",
                (uid, 10**9 * 10_000, f"bench-fund:{uuid.uuid4()}"),  # $10M each: never runs dry
            )
    raw.close()


def _make_batch(admin_url: str) -> None:
    from shared.db import connect_url

    raw = connect_url(admin_url)
    raw.autocommit = True
    cur = raw.cursor()
    cur.execute("BEGIN")
    cur.execute(MAKE_APPROVED.format(n=BATCH, users=USERS))
    held, ids = cur.fetchone()
    assert held == BATCH, held
    cur.execute(APPROVE, (json.loads(ids),))
    cur.execute("COMMIT")
    cur.execute("ANALYZE payout_requests")
    raw.close()


def main(args: argparse.Namespace) -> None:
    batches = 3 if args.quick else 12
    db = bench_database()
    _setup(db.admin_url)

    from functions.payouts import batch
    from functions.payouts.providers import SandboxProvider
    from shared.config import get_settings
    from shared.db import Query, get_db, reset_pools

    reset_pools()
    pool = get_db()
    settings = get_settings()
    provider = SandboxProvider()  # no delay, no failures
    while batch.process_batch(pool, provider, batch_size=BATCH, settings=settings).claimed:  # leftovers of an interrupted run
        pass
    batch.process_batch(pool, provider, batch_size=BATCH, settings=settings)  # warm the connection's prepared statements

    total_ms: list[float] = []
    parts: dict[str, list[float]] = {"claim": [], "provider (decrypt + submit)": [], "record": []}
    for _ in range(batches):
        _make_batch(db.admin_url)
        t0 = time.perf_counter()
        report = batch.process_batch(pool, provider, batch_size=BATCH, settings=settings)
        total_ms.append((time.perf_counter() - t0) * 1000)
        if report.claimed != BATCH or report.paid != BATCH:
            raise RuntimeError(f"expected {BATCH} paid, got {report.as_dict()}")
        parts["claim"].append(report.claim_ms)
        parts["provider (decrypt + submit)"].append(report.provider_ms)
        parts["record"].append(report.record_ms)

    one = Query("bench_select_1", "SELECT 1")
    reference: list[float] = []
    with pool.connection() as conn:
        for _ in range(batches):
            t0 = time.perf_counter()
            for _ in range(BATCH):
                conn.value(one)
            reference.append((time.perf_counter() - t0) * 1000)

    # A provider that answers in 20 ms (a stand-in for the network: PayPal or Cloud KMS take longer):
    # one at a time a batch would take BATCH x 20 ms; the worker hands PAYOUT_PROVIDER_CONCURRENCY
    # payouts to it at once.
    slow = SandboxProvider(delay_s=PROVIDER_LATENCY_S)
    slow_ms: list[float] = []
    for _ in range(max(2, batches // 4)):
        _make_batch(db.admin_url)
        t0 = time.perf_counter()
        report = batch.process_batch(pool, slow, batch_size=BATCH, settings=settings)
        slow_ms.append((time.perf_counter() - t0) * 1000)
        if report.paid != BATCH:
            raise RuntimeError(f"expected {BATCH} paid, got {report.as_dict()}")
    serial_floor_ms = BATCH * PROVIDER_LATENCY_S * 1000

    ratio = pct(total_ms, 50) / pct(reference, 50)
    rows = [
        summary(f"batch of {BATCH} approved payouts (sandbox)", total_ms, "p50 and p99 < 500 ms", pct(total_ms, 99) < 500),
        *(summary(f"  of which {name}", samples) for name, samples in parts.items()),
        summary(f"reference: {BATCH} prepared SELECT 1 round trips", reference),
        {"benchmark": "batch p50 / reference p50", "n": batches, "p50 ms": round(ratio, 2), "p99 ms": "", "target": "", "met": ""},
        summary(
            f"batch of {BATCH}, provider answering in {PROVIDER_LATENCY_S * 1000:.0f} ms, {settings.payout_provider_concurrency} at once",
            slow_ms,
        ),
        {"benchmark": f"  the same one at a time (arithmetic: {BATCH} x {PROVIDER_LATENCY_S * 1000:.0f} ms)", "p50 ms": serial_floor_ms},
    ]
    print_table(f"payouts: one batch worker in-process, {USERS} payees, real PostgreSQL", rows)
