"""The batch worker: exactly-once payment under concurrency and crashes, failures release the hold,
pending and transient outcomes are retried with the same payout id.

Every batch here may also pick up approved payouts other tests left behind; assertions look only at
this test's own payouts."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import threading
import uuid
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from functions.ledger import service as ledger
from functions.payouts import batch, events, providers, service
from functions.payouts.providers import SandboxProvider
from shared.config import Settings, get_settings
from shared.db import Query, get_db
from tests.helpers import Api
from tests.payouts.test_requests import available_cents, ledger_ok, new_payout, payee, staff_id

EXPIRE = Query(
    "test_expire_leases",
    "UPDATE payout_requests SET next_check_at = now() - interval '1 second' WHERE id = ANY(CAST(:ids AS uuid[]))",
    prepared=False,
)
STATES = Query(
    "test_states",
    """SELECT id::text AS id, status, provider_status, failure_code, attempts, last_error
         FROM payout_requests WHERE id = ANY(CAST(:ids AS uuid[]))""",
    prepared=False,
)
EVENTS = Query("test_batch_events", "SELECT to_state FROM payout_events WHERE payout_id = CAST(:id AS uuid) ORDER BY id", prepared=False)
DEAD = Query("test_dead_letters", "SELECT code FROM dead_letters WHERE source = 'process_payouts' ORDER BY id DESC LIMIT 1", prepared=False)


PAID_ENTRIES = Query(
    "t_paid_entries",
    "SELECT reference, amount FROM earnings WHERE user_id = CAST(:u AS uuid) AND type = 'payout_paid'",
    prepared=False,
)


def with_retry(seconds: int) -> Settings:
    """The current settings (read when the test runs) with another PAYOUT_RETRY_SECONDS."""
    return get_settings().model_copy(update={"payout_retry_seconds": seconds})


def approved(api: Api, owner_conn: Any, amounts: list[int], *, users: int = 1) -> tuple[list[str], list[str]]:
    """``amounts`` as approved payouts spread over ``users`` funded users; returns (payout ids, user ids)."""
    finance = staff_id(api, owner_conn)
    people = [payee(api, owner_conn, cents=sum(amounts) + 1_000).id for _ in range(users)]
    ids = []
    for i, cents in enumerate(amounts):
        pid = new_payout(people[i % users], cents)["id"]
        with get_db().connection() as conn:
            service.approve(conn, pid, finance)
        ids.append(pid)
    return ids, people


def states(owner_conn: Any, ids: list[str]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in owner_conn.all(STATES, ids=ids)}


def paid_out(user_id: str) -> int:
    with get_db().connection() as conn:
        return int(ledger.balance(conn, user_id)["lifetime_paid_out"])


def run_until_idle(
    provider: SandboxProvider, *, batch_size: int = 1000, settings: Settings | None = None, worker_id: str | None = None
) -> None:
    settings = settings or with_retry(0)
    for _ in range(20):
        if batch.process_batch(get_db(), provider, batch_size=batch_size, settings=settings, worker_id=worker_id).claimed == 0:
            return
    raise AssertionError("the worker never went idle")


def test_a_batch_pays_approved_payouts_and_counts_them(api: Api, owner_conn: Any) -> None:
    ids, (user,) = approved(api, owner_conn, [1_000, 2_000, 3_000])
    provider = SandboxProvider()
    report = batch.process_batch(get_db(), provider, settings=with_retry(0))
    assert report.claimed >= 3 and report.paid >= 3
    assert all(s["status"] == "paid" and s["provider_status"] == "paid" for s in states(owner_conn, ids).values())
    assert paid_out(user) == 6_000 * ledger.MICROS_PER_CENT
    assert available_cents(user) == 1_000  # funded 7,000, paid 6,000
    # paid-out money is in the ledger: one payout_paid entry per payout takes it out of held
    with get_db().connection() as conn:
        assert ledger.balance(conn, user)["held"] == 0
    settled = owner_conn.all(PAID_ENTRIES, u=user)
    assert sorted((r["reference"], r["amount"]) for r in settled) == sorted(
        (pid, -c * ledger.MICROS_PER_CENT) for pid, c in zip(ids, [1_000, 2_000, 3_000], strict=True)
    )
    assert owner_conn.all(EVENTS, id=ids[0]) == [{"to_state": s} for s in ("requested", "approved", "submitted", "paid")]
    assert {pid for pid in ids if provider.record(pid)} == set(ids)
    # the user sees it paid
    with get_db().connection() as conn:
        seen = service.get_payout(conn, user, ids[0])
    assert seen["status"] == "paid" and [e["to"] for e in seen["events"]] == ["requested", "approved", "submitted", "paid"]
    assert ledger_ok(user)


def test_concurrent_workers_pay_each_payout_exactly_once(api: Api, owner_conn: Any) -> None:
    ids, people = approved(api, owner_conn, [1_000 + i for i in range(40)], users=4)
    provider = _GateProvider(delay_s=0.002)  # calls overlap between workers
    one_at_a_time = with_retry(0).model_copy(update={"payout_provider_concurrency": 1})
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            run_until_idle(provider, batch_size=5, settings=one_at_a_time, worker_id=f"test-worker-{n}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert all(s["status"] == "paid" for s in states(owner_conn, ids).values())
    payments = provider.payments()
    for pid in ids:
        assert pid in payments and provider.submits_of(pid) == 1, pid
    workers = {
        r["claimed_by"]
        for r in owner_conn.all(
            Query("t_claims", "SELECT claimed_by FROM payout_requests WHERE id = ANY(CAST(:ids AS uuid[]))", prepared=False), ids=ids
        )
    }
    assert len(workers) > 1  # the work really was shared between threads (each thread claims under its own id)
    total = sum(1_000 + i for i in range(40)) * ledger.MICROS_PER_CENT
    assert sum(paid_out(u) for u in people) == total
    assert all(ledger_ok(u) for u in people)


class _GateProvider(SandboxProvider):
    """A sandbox that holds the first submit until a second payout is submitted. With one provider call
    at a time per worker, that second submit can only come from another worker's claim: the work is
    shared whatever the thread timing (a worker that claimed everything would leave the gate shut)."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.entered = 0
        self.gate = threading.Condition()

    def submit(self, payout: providers.PayoutInstruction) -> providers.ProviderResult:
        with self.gate:
            self.entered += 1
            self.gate.notify_all()
            self.gate.wait_for(lambda: self.entered >= 2, timeout=20)
        return super().submit(payout)


def test_provider_failure_releases_the_hold(api: Api, owner_conn: Any, caplog: pytest.LogCaptureFixture) -> None:
    ids, (user,) = approved(api, owner_conn, [1_013, 1_000])
    before = available_cents(user)
    provider = SandboxProvider(fail_amount_suffixes=("13",))
    with caplog.at_level(logging.ERROR):
        batch.process_batch(get_db(), provider, settings=with_retry(0))
    s = states(owner_conn, ids)
    assert s[ids[0]]["status"] == "failed" and s[ids[0]]["failure_code"] == "sandbox_rejected_amount"
    assert s[ids[1]]["status"] == "paid"
    assert available_cents(user) == before + 1_013
    assert paid_out(user) == 1_000 * ledger.MICROS_PER_CENT
    alerts = [r for r in caplog.records if getattr(r, "event", None) == "payout_failed" and getattr(r, "payout_id", None) == ids[0]]
    assert len(alerts) == 1 and alerts[0].levelno == logging.ERROR
    # recording the same failure again (a second worker after a lease expiry) releases nothing more
    outcome = batch.Outcome(batch.Claimed(ids[0], user, 1_013, "USD", "paypal", 1, None, None, None), "failed", failure_code="again")
    assert get_db().run_in_transaction(lambda conn: batch.record(conn, [outcome])) == []
    assert available_cents(user) == before + 1_013
    assert ledger_ok(user)


def test_pending_is_rechecked_with_get_status(api: Api, owner_conn: Any) -> None:
    ids, (user,) = approved(api, owner_conn, [2_000])
    provider = SandboxProvider(pending=True, settle_after_polls=1)
    batch.process_batch(get_db(), provider, settings=with_retry(3600))
    s = states(owner_conn, ids)[ids[0]]
    assert (s["status"], s["provider_status"]) == ("submitted", "pending")
    batch.process_batch(get_db(), provider, settings=with_retry(0))  # not due yet: untouched
    assert states(owner_conn, ids)[ids[0]]["attempts"] == 1
    owner_conn.execute(EXPIRE, ids=ids)
    batch.process_batch(get_db(), provider, settings=with_retry(0))
    assert states(owner_conn, ids)[ids[0]]["status"] == "paid"
    assert provider.submits_of(ids[0]) == 1 and ids[0] in provider.payments()
    assert paid_out(user) == 2_000 * ledger.MICROS_PER_CENT


def test_transient_errors_retry_with_the_same_id(api: Api, owner_conn: Any) -> None:
    ids, (user,) = approved(api, owner_conn, [2_500])
    provider = SandboxProvider(transient_failures=2, transient_payout_ids=frozenset(ids))
    batch.process_batch(get_db(), provider, settings=with_retry(0))
    s = states(owner_conn, ids)[ids[0]]
    assert s["status"] == "submitted" and "ProviderTransientError" in s["last_error"]
    assert available_cents(user) == 1_000  # the hold stays
    run_until_idle(provider)
    s = states(owner_conn, ids)[ids[0]]
    assert s["status"] == "paid" and s["attempts"] == 3
    assert ids[0] in provider.payments() and provider.payment_count >= 1
    assert paid_out(user) == 2_500 * ledger.MICROS_PER_CENT
    assert ledger_ok(user)


def test_crash_after_claim_before_submit(api: Api, owner_conn: Any) -> None:
    ids, (user,) = approved(api, owner_conn, [1_500, 1_600])
    provider = SandboxProvider()
    with get_db().transaction() as conn:
        claimed = batch.claim(conn, worker_id="doomed", batch_size=1000, provider_name="sandbox", lease_s=600)
    assert set(ids) <= {c.id for c in claimed}
    # the worker dies here. Until the lease expires nobody touches them...
    batch.process_batch(get_db(), provider, settings=with_retry(0))
    assert all(s["status"] == "submitted" for s in states(owner_conn, ids).values())
    assert not any(provider.record(pid) for pid in ids)
    # ...then the next batch takes them over with the same ids
    owner_conn.execute(EXPIRE, ids=ids)
    batch.process_batch(get_db(), provider, settings=with_retry(0))
    assert all(s["status"] == "paid" for s in states(owner_conn, ids).values())
    assert all(provider.submits_of(pid) == 1 for pid in ids)
    assert paid_out(user) == 3_100 * ledger.MICROS_PER_CENT
    assert ledger_ok(user)


def test_crash_after_submit_before_recording(api: Api, owner_conn: Any) -> None:
    ids, (user,) = approved(api, owner_conn, [1_700, 1_800])
    provider = SandboxProvider()
    with get_db().transaction() as conn:
        claimed = [c for c in batch.claim(conn, worker_id="doomed", batch_size=1000, provider_name="sandbox", lease_s=600) if c.id in ids]
    late = batch.execute(provider, claimed, with_retry(0))  # the money moved...
    assert {o.kind for o in late} == {"paid"} and all(pid in provider.payments() for pid in ids)
    # ...and the worker died before writing it down. After the lease, another worker finds out.
    owner_conn.execute(EXPIRE, ids=ids)
    batch.process_batch(get_db(), provider, settings=with_retry(0))
    assert all(s["status"] == "paid" and s["attempts"] == 2 for s in states(owner_conn, ids).values())
    assert all(provider.submits_of(pid) == 1 for pid in ids)  # looked up with get_status, not resubmitted
    assert paid_out(user) == 3_500 * ledger.MICROS_PER_CENT
    # the zombie wakes up and records its (same) outcome: counted once
    get_db().run_in_transaction(lambda conn: batch.record(conn, late))
    assert paid_out(user) == 3_500 * ledger.MICROS_PER_CENT
    assert [e["to_state"] for e in owner_conn.all(EVENTS, id=ids[0])] == ["requested", "approved", "submitted", "submitted", "paid"]
    assert ledger_ok(user)


def test_an_erased_method_fails_the_payout_and_releases(api: Api, owner_conn: Any) -> None:
    ids, (user,) = approved(api, owner_conn, [1_900])
    owner_conn.execute(
        Query(
            "test_erase_method",
            "UPDATE payout_methods SET details = NULL, erased_at = now(), is_default = false WHERE user_id = CAST(:id AS uuid)",
            prepared=False,
        ),
        id=user,
    )
    before = available_cents(user)
    batch.process_batch(get_db(), SandboxProvider(), settings=with_retry(0))
    s = states(owner_conn, ids)[ids[0]]
    assert (s["status"], s["failure_code"]) == ("failed", "destination_unavailable")
    assert available_cents(user) == before + 1_900


def _event(data: dict[str, Any]) -> CloudEvent:
    message = {"data": base64.b64encode(json.dumps(data).encode()).decode(), "messageId": "m-1"}
    return CloudEvent({"type": "google.cloud.pubsub.topic.v1.messagePublished", "source": "//pubsub/test"}, {"message": message})


def test_the_event_and_the_command_run_batches(api: Api, owner_conn: Any) -> None:
    from functions.payouts import commands

    ids, _ = approved(api, owner_conn, [1_100, 1_200])
    provider = SandboxProvider()
    providers.set_provider(provider, "sandbox")
    try:
        events.process_payouts(_event({"batch_size": 1}))  # loops until a short batch
        assert all(s["status"] == "paid" for s in states(owner_conn, ids).values())
        more, _ = approved(api, owner_conn, [1_300])
        assert commands.cmd_process_payouts(argparse.Namespace(batch_size=10, max_batches=2)) == 0
        assert states(owner_conn, more)[more[0]]["status"] == "paid"
    finally:
        providers.set_provider(None)
    for bad in ({"batch_size": "many"}, {"batch_size": 0}, {"batch_size": True}, {"max_batches": 10**6}):
        events.process_payouts(_event(bad))  # dead-lettered, not raised
        assert owner_conn.value(DEAD) == "invalid_message"


# --- concurrency within a batch -----------------------------------------------------------------------
class _MeetingProvider(SandboxProvider):
    """A sandbox whose submits wait until ``parties`` of them are in flight together (a barrier), and
    which remembers the most it saw at once. Calls made one at a time could never meet: the barrier
    would time out and every submit in that group would raise."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=20)
        self.in_flight = 0
        self.most = 0
        self.count_lock = threading.Lock()

    def submit(self, payout: providers.PayoutInstruction) -> providers.ProviderResult:
        with self.count_lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
        try:
            self.barrier.wait()
            return super().submit(payout)
        finally:
            with self.count_lock:
                self.in_flight -= 1


def _claimed(n: int, user_id: str) -> list[batch.Claimed]:
    from shared.crypto import encrypt_json

    envelope = encrypt_json({"email": "meeting.payee@example.com"}, aad=service.method_aad(user_id))
    return [batch.Claimed(str(uuid.uuid4()), user_id, 1_000 + i, "USD", "paypal", 1, None, None, envelope) for i in range(n)]


def test_a_batch_hands_payouts_to_the_provider_concurrently_in_order() -> None:
    user_id = str(uuid.uuid4())
    items = _claimed(12, user_id)
    provider = _MeetingProvider(parties=4)
    settings = get_settings().model_copy(update={"payout_provider_concurrency": 4})
    outcomes = batch.execute(provider, items, settings)
    assert [o.payout.id for o in outcomes] == [i.id for i in items], "outcomes come back in the items' order"
    assert [o.kind for o in outcomes] == ["paid"] * 12, [o.error for o in outcomes]
    assert provider.most == 4
    assert {pid: r.instruction.amount_cents for pid, r in provider.payments().items()} == {i.id: i.amount_cents for i in items}


def test_concurrency_one_calls_the_provider_one_at_a_time() -> None:
    items = _claimed(5, str(uuid.uuid4()))
    provider = _MeetingProvider(parties=1)
    outcomes = batch.execute(provider, items, get_settings().model_copy(update={"payout_provider_concurrency": 1}))
    assert [o.kind for o in outcomes] == ["paid"] * 5 and provider.most == 1


def test_a_concurrent_batch_pays_each_payout_once_end_to_end(api: Api, owner_conn: Any) -> None:
    ids, people = approved(api, owner_conn, [1_000 + i for i in range(24)], users=3)
    provider = SandboxProvider(delay_s=0.005)
    run_until_idle(provider, settings=with_retry(0).model_copy(update={"payout_provider_concurrency": 8}))
    assert all(s["status"] == "paid" for s in states(owner_conn, ids).values())
    assert all(provider.submits_of(pid) == 1 for pid in ids)
    assert all(ledger_ok(u) for u in people)
