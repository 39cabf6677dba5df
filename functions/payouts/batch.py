"""The payout batch worker: claim approved payouts, pay them through the provider, record the outcomes.

Three steps, and never a transaction open across a provider call:

1. ``claim`` (one short transaction): approved payouts, and submitted ones whose ``next_check_at`` has
   come (a lease that expired after a crash, a pending payout to re-check, a transient error to retry),
   are locked with ``FOR UPDATE SKIP LOCKED`` (concurrent workers take disjoint sets), marked
   ``submitted`` with the worker id, a claim time and a lease, and committed.
2. ``execute`` (no transaction): each payout goes to the provider with OUR payout id as its idempotency
   key. A re-claimed payout is first looked up with ``get_status`` and only resubmitted (same id) when
   the provider does not know it, so a crash between the provider call and step 3 never pays twice.
3. ``record`` (one short transaction): paid -> ``paid`` and the ledger's lifetime paid-out counter;
   failed -> ``failed`` and the hold released (``payout_release``); pending or a transient error -> stays
   ``submitted``, due again after ``PAYOUT_RETRY_SECONDS``. Every change is conditional on the row still
   being ``submitted``, so two workers recording one payout (after a lease expiry) count it once.

A crash after 1 leaves payouts ``submitted`` until their lease expires; then the next batch claims them
again (step 2 makes that safe). Nothing is lost: every claimed payout ends paid, failed or due again.

``process_batch`` is the workflow: it opens each step's transaction with the pool's helpers (``claim``
and ``record`` take the ``Conn``), and logs the failures after the commit.
"""

from __future__ import annotations

import contextvars
import json
import os
import socket
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

from functions.ledger import service as ledger
from functions.notifications.service import notify, notify_many
from functions.payouts import queries as q
from functions.payouts.providers import (
    PayoutInstruction,
    PayoutNotFound,
    PayoutProvider,
    ProviderResult,
    ProviderTransientError,
    get_provider,
)
from functions.payouts.service import method_aad, release
from shared.config import Settings, get_settings
from shared.crypto import CryptoError, decrypt_json
from shared.db import Conn, Database, get_db
from shared.errors import ServiceUnavailable
from shared.logs import get_logger

log = get_logger(__name__)

OutcomeKind = Literal["paid", "failed", "pending", "retry"]


@dataclass(frozen=True)
class Claimed:
    """A payout this worker claimed (``details`` is the method's envelope, decrypted only to submit)."""

    id: str
    user_id: str
    amount_cents: int
    currency: str
    method_type: str
    attempts: int
    provider_reference: str | None
    provider_status: str | None
    details: dict[str, Any] | None = field(repr=False)

    @property
    def reclaimed(self) -> bool:
        """Claimed before (a retry, a status check, or a crashed worker's payout): ask the provider first."""
        return self.attempts > 1


@dataclass
class Outcome:
    payout: Claimed
    kind: OutcomeKind
    reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    error: str | None = None
    retry_s: float = 0.0


@dataclass
class BatchReport:
    worker: str
    claimed: int = 0
    paid: int = 0
    failed: int = 0
    pending: int = 0
    retried: int = 0
    claim_ms: float = 0.0
    provider_ms: float = 0.0
    record_ms: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class DestinationUnavailable(Exception):
    """The method's details cannot be decrypted (erased or tampered with): the payout cannot be sent."""


def new_worker_id() -> str:
    return f"{socket.gethostname()[:100]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def provider_for(settings: Settings | None = None) -> PayoutProvider:
    """The process-wide provider named by ``PAYOUT_PROVIDER`` (sandbox unless production)."""
    settings = settings or get_settings()
    return get_provider(settings.payout_provider, settings)


# --- 1. claim ----------------------------------------------------------------------------------------
def claim(conn: Conn, *, worker_id: str, batch_size: int, provider_name: str, lease_s: int) -> list[Claimed]:
    """Claims up to ``batch_size`` payouts (due re-checks first, then approved ones) in the caller's short transaction."""
    rows = conn.all(q.CLAIM_DUE, limit=batch_size, worker=worker_id, lease_s=lease_s)
    if len(rows) < batch_size:
        rows += conn.all(q.CLAIM_APPROVED, limit=batch_size - len(rows), worker=worker_id, lease_s=lease_s, provider=provider_name)
    return [Claimed(**r) for r in rows]


# --- 2. execute (outside any transaction) ------------------------------------------------------------
def instruction(item: Claimed) -> PayoutInstruction:
    """What the provider gets: our payout id (its idempotency key), the amount and the decrypted destination."""
    if item.details is None:
        raise DestinationUnavailable("the payout method's details were erased")
    try:
        destination = decrypt_json(item.details, aad=method_aad(item.user_id))
    except CryptoError as exc:
        raise DestinationUnavailable(f"the payout method's details cannot be decrypted: {type(exc).__name__}") from exc
    method_type: Any = item.method_type
    return PayoutInstruction(
        payout_id=item.id,
        amount_cents=item.amount_cents,
        currency=item.currency,
        method_type=method_type,
        destination=destination,
        note=f"EarnPay payout {item.id}",
    )


def _from_result(item: Claimed, result: ProviderResult, settings: Settings) -> Outcome:
    if result.status == "paid":
        return Outcome(item, "paid", reference=result.provider_reference)
    if result.status == "failed":
        return Outcome(item, "failed", result.provider_reference, result.failure_code, (result.failure_message or "")[:1000])
    return Outcome(item, "pending", reference=result.provider_reference, retry_s=settings.payout_retry_seconds)


def call_provider(provider: PayoutProvider, item: Claimed, settings: Settings) -> Outcome:
    """One payout through the provider; any doubt about whether money moved becomes a retry, never a failure."""
    try:
        if item.reclaimed:
            try:
                return _from_result(item, provider.get_status(item.id, item.provider_reference), settings)
            except PayoutNotFound:
                pass  # not known under that reference: submitting with the same id finds or makes it
        try:
            instr = instruction(item)
        except DestinationUnavailable as exc:
            if item.reclaimed:  # an earlier claim may have submitted it: only a person can decide
                return Outcome(item, "retry", error=str(exc), retry_s=settings.payout_retry_seconds)
            return Outcome(item, "failed", failure_code="destination_unavailable", failure_message=str(exc))
        return _from_result(item, provider.submit(instr), settings)
    except ProviderTransientError as exc:
        retry = exc.retry_after_s if exc.retry_after_s is not None else settings.payout_retry_seconds
        return Outcome(item, "retry", error=f"{type(exc).__name__}: {exc}"[:1000], retry_s=max(float(settings.payout_retry_seconds), retry))
    except ServiceUnavailable as exc:  # the key service is down: try again later
        return Outcome(item, "retry", error=f"{type(exc).__name__}: {exc.message}"[:1000], retry_s=settings.payout_retry_seconds)
    except Exception as exc:  # unknown: the money may have moved, so keep the hold and look again later
        log.exception("payout provider call failed", extra={"event": "payout_provider_error", "payout_id": item.id})
        return Outcome(item, "retry", error=f"{type(exc).__name__}: {exc}"[:1000], retry_s=settings.payout_retry_seconds)


def execute(provider: PayoutProvider, items: list[Claimed], settings: Settings | None = None) -> list[Outcome]:
    """Every claimed payout through the provider, ``PAYOUT_PROVIDER_CONCURRENCY`` at a time.

    Each call is independent (its own idempotency key, its own decrypt) and waits on the network (the
    provider, Cloud KMS), so a batch of 1,000 at 200 ms a call takes ~13 s with 16 at once instead of
    ~200 s one by one, well inside the claim's lease. Outcomes come back in the items' order.
    """
    settings = settings or get_settings()
    workers = min(settings.payout_provider_concurrency, len(items))
    if workers <= 1:
        return [call_provider(provider, item, settings) for item in items]
    # One task per thread, each taking the next payout until none are left (not a future per payout:
    # with a provider that answers at once, per-call hand-offs cost more than the calls), in its own
    # copy of this thread's context, so log lines keep the request and trace ids.
    pending = deque(enumerate(items))  # deque pops are thread-safe
    outcomes: dict[int, Outcome] = {}

    def work() -> None:
        while True:
            try:
                index, item = pending.popleft()
            except IndexError:
                return
            outcomes[index] = call_provider(provider, item, settings)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="payout-provider") as pool:
        for task in [pool.submit(contextvars.copy_context().run, work) for _ in range(workers)]:
            task.result()  # call_provider turns every Exception into an outcome; anything else surfaces here
    return [outcomes[i] for i in range(len(items))]


# --- 3. record ---------------------------------------------------------------------------------------
def _money_cents(cents: int) -> dict[str, Any]:
    return ledger.money(int(cents) * ledger.MICROS_PER_CENT)


def record(conn: Conn, outcomes: list[Outcome]) -> list[str]:
    """Records a batch's outcomes in the caller's (short) transaction; returns the ids this call marked failed."""
    paid = [{"id": o.payout.id, "reference": o.reference} for o in outcomes if o.kind == "paid"]
    failed = sorted((o for o in outcomes if o.kind == "failed"), key=lambda o: (o.payout.user_id, o.payout.id))
    not_final = [
        {
            "id": o.payout.id,
            "reference": o.reference,
            "provider_status": "pending" if o.kind == "pending" else None,
            "error": o.error,
            "retry_s": o.retry_s,
        }
        for o in outcomes
        if o.kind in ("pending", "retry")
    ]
    newly_failed: list[str] = []
    if paid:
        done = conn.one(q.RECORD_PAID, rows=json.dumps(paid), micros_per_cent=ledger.MICROS_PER_CENT)
        paid_rows = json.loads(done["done_rows"]) if done else []
        notify_many(
            conn,
            "payout_paid",
            [(str(p["user_id"]), {"payout_id": str(p["id"]), "amount": _money_cents(p["amount_cents"])}, None) for p in paid_rows],
        )
    for o in failed:
        row = conn.one(
            q.RECORD_FAILED,
            id=o.payout.id,
            reference=o.reference,
            failure_code=(o.failure_code or "unknown")[:100],
            failure_message=o.failure_message,
            reason=f"failed: {o.failure_code}"[:500],
        )
        if row is not None:  # this call made the change: release exactly once
            release(conn, row, "failed")
            newly_failed.append(row["id"])
            notify(
                conn,
                row["user_id"],
                "payout_failed",
                {"payout_id": row["id"], "amount": _money_cents(row["amount_cents"]), "reason": "the payment provider refused it"},
            )
    if not_final:
        conn.execute(q.RECORD_NOT_FINAL, rows=json.dumps(not_final))
    return newly_failed


def log_recorded(outcomes: list[Outcome], newly_failed: list[str], *, provider_name: str, settings: Settings) -> None:
    """After the commit: an alert per payout that failed, a warning (an error once stuck) per retry."""
    by_id = {o.payout.id: o for o in outcomes if o.kind == "failed"}
    for pid in newly_failed:
        o = by_id[pid]
        log.error(
            "payout %s failed at %s: %s",
            pid,
            provider_name,
            o.failure_code,
            extra={
                "event": "payout_failed",
                "payout_id": pid,
                "provider": provider_name,
                "failure_code": o.failure_code,
                "amount_cents": o.payout.amount_cents,
                "attempts": o.payout.attempts,
            },
        )
    for o in outcomes:
        if o.kind == "retry":
            stuck = o.payout.attempts >= settings.payout_stuck_after_attempts
            log.log(
                40 if stuck else 30,
                "payout %s not settled after %d attempts: %s",
                o.payout.id,
                o.payout.attempts,
                o.error,
                extra={"event": "payout_stuck" if stuck else "payout_retry", "payout_id": o.payout.id, "attempts": o.payout.attempts},
            )


# --- the whole batch ---------------------------------------------------------------------------------
def process_batch(
    db: Database | None = None,
    provider: PayoutProvider | None = None,
    *,
    batch_size: int | None = None,
    worker_id: str | None = None,
    settings: Settings | None = None,
) -> BatchReport:
    """Claims, pays and records one batch; returns counts and timings."""
    settings = settings or get_settings()
    db = db or get_db()
    provider = provider or provider_for(settings)  # before claiming: a misconfigured provider claims nothing
    report = BatchReport(worker=worker_id or new_worker_id())
    started = time.perf_counter()
    size = batch_size or settings.payout_batch_size
    with db.transaction() as conn:
        items = claim(conn, worker_id=report.worker, batch_size=size, provider_name=provider.name, lease_s=settings.payout_lease_seconds)
    report.claimed = len(items)
    claimed_at = time.perf_counter()
    report.claim_ms = (claimed_at - started) * 1000
    if not items:
        return report
    outcomes = execute(provider, items, settings)
    executed_at = time.perf_counter()
    report.provider_ms = (executed_at - claimed_at) * 1000
    newly_failed = db.run_in_transaction(lambda conn: record(conn, outcomes))
    log_recorded(outcomes, newly_failed, provider_name=provider.name, settings=settings)
    report.record_ms = (time.perf_counter() - executed_at) * 1000
    report.paid = sum(1 for o in outcomes if o.kind == "paid")
    report.failed = len(newly_failed)
    report.pending = sum(1 for o in outcomes if o.kind == "pending")
    report.retried = sum(1 for o in outcomes if o.kind == "retry")
    log.info(
        "payout batch: %d claimed, %d paid, %d failed, %d pending, %d to retry",
        report.claimed,
        report.paid,
        report.failed,
        report.pending,
        report.retried,
        extra={"event": "payout_batch", **report.as_dict()},
    )
    return report


def process_payouts(
    db: Database | None = None,
    provider: PayoutProvider | None = None,
    *,
    batch_size: int | None = None,
    max_batches: int = 10,
    settings: Settings | None = None,
) -> list[BatchReport]:
    """Runs batches until one comes back short (nothing more to do) or ``max_batches`` ran."""
    settings = settings or get_settings()
    size = batch_size or settings.payout_batch_size
    provider = provider or provider_for(settings)
    reports: list[BatchReport] = []
    for _ in range(max_batches):
        report = process_batch(db, provider, batch_size=size, settings=settings)
        reports.append(report)
        if report.claimed < size:
            break
    return reports
