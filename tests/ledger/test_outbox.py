"""The transactional outbox: events exist exactly when their change committed, and reach Pub/Sub exactly once per sweep race."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest

from functions.ledger import service as ledger
from shared import outbox
from shared.config import get_settings
from shared.db import Query, get_db
from tests.fixtures.pubsub import PubSub
from tests.helpers import Api

# Credits clear at once here: these tests are about other rules (clearing: tests/ledger/test_clearing.py).
pytestmark = pytest.mark.usefixtures("immediate_clearing")

ROWS_BY_KEY = Query(
    "t_outbox_rows",
    """SELECT id, event_type, key, payload, published_at, attempts, last_error, message_id
         FROM outbox WHERE key = ANY(CAST(:keys AS text[]))""",
    prepared=False,
)


ENTRY_IDS = Query("t_outbox_entry_ids", "SELECT id FROM earnings WHERE user_id = :u", prepared=False)


def rows(*keys: str) -> list[dict[str, Any]]:
    with get_db().connection() as conn:
        return conn.all(ROWS_BY_KEY, keys=list(keys))


def test_emit_in_a_rolled_back_transaction_leaves_nothing() -> None:
    key = f"test_event:{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError), get_db().transaction() as conn:
        assert outbox.emit(conn, "test_event", {"n": 1}, key=key) is not None
        raise RuntimeError("the change failed")
    assert rows(key) == []


def test_emit_is_deduplicated_by_key() -> None:
    key = f"test_event:{uuid.uuid4().hex}"
    with get_db().transaction() as conn:
        first = outbox.emit(conn, "test_event", {"n": 1}, key=key)
    with get_db().transaction() as conn:
        again = outbox.emit(conn, "test_event", {"n": 2}, key=key)
    assert first is not None and again is None
    [row] = rows(key)
    assert row["payload"] == {"n": 1} and row["published_at"] is None and row["attempts"] == 0


def test_signup_and_credits_emit_their_events(api: Api) -> None:
    user = api.signup()
    [signed_up] = rows(f"user_signed_up:{user.id}")
    assert signed_up["event_type"] == "user_signed_up" and signed_up["payload"]["user_id"] == user.id
    assert "email" not in signed_up["payload"]
    with get_db().transaction() as conn:
        posted = ledger.post(conn, user_id=user.id, type="video_reward", amount=3_000, idempotency_key="o-1", source="test")
        again = ledger.post(conn, user_id=user.id, type="video_reward", amount=3_000, idempotency_key="o-1", source="test")
        debit = ledger.post(conn, user_id=user.id, type="payout_hold", amount=-1_000, idempotency_key="o-2", source="test")
    assert again.duplicate
    [credited] = rows(f"earnings_credited:{posted.entry_id}")
    assert credited["payload"]["amount"] == {"micros": 3_000, "formatted": "$0.003", "currency": "USD"}
    assert credited["payload"]["user_id"] == user.id
    assert credited["payload"]["type"] == "video_reward" and credited["payload"]["balance_after"]["micros"] == 3_000
    assert credited["payload"]["created_at"].endswith("Z")
    assert rows(f"earnings_credited:{debit.entry_id}") == []  # only credits are "earnings credited"


def test_sweep_with_pubsub_disabled_keeps_rows_pending_and_reports_them() -> None:
    key = f"test_event:{uuid.uuid4().hex}"
    with get_db().transaction() as conn:
        outbox.emit(conn, "test_event", {"n": 1}, key=key)
    report = outbox.sweep(get_db(), min_age_s=0)
    assert report["pubsub_enabled"] is False and report["published"] == 0 and report["pending"] >= 1
    assert rows(key)[0]["published_at"] is None


@pytest.mark.pubsub
def test_a_scope_publishes_its_committed_events_when_it_ends(pubsub: PubSub) -> None:
    sub = pubsub.pull_subscription(outbox.TOPIC)
    committed = f"test_event:{uuid.uuid4().hex}"
    rolled_back = f"test_event:{uuid.uuid4().hex}"
    threads_before = {t.name for t in threading.enumerate()}
    with outbox.publishing() as noted:
        with pytest.raises(RuntimeError), get_db().transaction() as conn:
            outbox.emit(conn, "test_event", {"committed": False}, key=rolled_back)
            raise RuntimeError("rolled back")
        with get_db().transaction() as conn:
            outbox.emit(conn, "test_event", {"committed": True}, key=committed)
        assert len(noted) == 2 and rows(committed)[0]["published_at"] is None  # nothing goes out before the scope ends
    [row] = rows(committed)  # published by the time the scope has closed: no thread, no waiting
    assert row["published_at"] is not None and row["attempts"] == 1 and row["message_id"]
    assert not any("outbox" in name for name in {t.name for t in threading.enumerate()} - threads_before)
    ours = [m for m in pubsub.pull(sub, want=1, timeout=10, settle=0.5) if m.attributes["key"] in (committed, rolled_back)]
    assert [(m.attributes["key"], m.attributes["event_type"], json.loads(m.data)) for m in ours] == [
        (committed, "test_event", {"committed": True})
    ]


def test_outside_a_scope_events_wait_for_the_sweep() -> None:
    key = f"test_event:{uuid.uuid4().hex}"
    with get_db().transaction() as conn:
        outbox.emit(conn, "test_event", {"n": 1}, key=key)
    assert outbox.publish_committed([]) == 0
    assert rows(key)[0]["published_at"] is None


@pytest.mark.pubsub
def test_a_request_publishes_its_events_before_it_answers(pubsub: PubSub, api: Api) -> None:
    user = api.signup()  # signup emits user_signed_up in its transaction
    [row] = rows(f"user_signed_up:{user.id}")
    assert row["published_at"] is not None and row["message_id"]


@pytest.mark.pubsub
def test_publish_after_commit_can_be_switched_off(pubsub: PubSub, api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_PUBLISH_AFTER_COMMIT", "false")
    get_settings.cache_clear()
    user = api.signup()
    assert rows(f"user_signed_up:{user.id}")[0]["published_at"] is None  # left to the sweep


@pytest.mark.pubsub
def test_concurrent_sweeps_publish_each_event_exactly_once(pubsub: PubSub, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = pubsub.pull_subscription(outbox.TOPIC)
    notifications = pubsub.pull_subscription("notifications")  # the sweep relays every topic's rows
    keys = [f"test_event:{uuid.uuid4().hex}" for _ in range(40)]
    with get_db().transaction() as conn:
        for i, key in enumerate(keys):
            outbox.emit(conn, "test_event", {"i": i}, key=key)
    reports: list[dict[str, Any]] = []
    barrier = threading.Barrier(2)

    def sweeper() -> None:
        barrier.wait()
        while True:  # every pending row of the database, in pages, until none is left
            report = outbox.sweep(get_db(), limit=25, min_age_s=0)
            reports.append(report)
            if report["published"] == 0 and report["failed"] == 0:
                return

    threads = [threading.Thread(target=sweeper) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    published = sum(r["published"] for r in reports)
    assert all(r["failed"] == 0 for r in reports)
    assert all(r["published_at"] is not None and r["attempts"] == 1 for r in rows(*keys))
    relayed = pubsub.pull(notifications, want=0, timeout=2, settle=1.5)  # already accepted by the emulator
    messages = relayed + pubsub.pull(sub, want=published - len(relayed), timeout=20, settle=1.0)
    seen = [m.attributes["key"] for m in messages]
    assert len(seen) == len(set(seen)) == published  # nothing published twice, by either sweeper
    assert set(keys) <= set(seen)


@pytest.mark.pubsub
def test_an_event_function_publishes_the_events_it_emits(pubsub: PubSub, api: Api, client: Any) -> None:
    from tests.ledger.test_credit_events import credit, deliver, push_body

    user = api.signup()
    assert deliver(client, push_body(credit(user.id))).status_code == 200
    with get_db().connection() as conn:
        [entry_id] = [r["id"] for r in conn.all(ENTRY_IDS, u=user.id)]
    [row] = rows(f"earnings_credited:{entry_id}")
    assert row["published_at"] is not None and row["message_id"]
