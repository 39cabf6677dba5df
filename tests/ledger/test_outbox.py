"""The transactional outbox: events exist exactly when their change committed, and reach Pub/Sub exactly once per sweep race."""

from __future__ import annotations

import json
import threading
import time
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
    assert credited["payload"]["amount_micros"] == 3_000 and credited["payload"]["user_id"] == user.id
    assert credited["payload"]["type"] == "video_reward" and credited["payload"]["balance_after_micros"] == 3_000
    assert rows(f"earnings_credited:{debit.entry_id}") == []  # only credits are "earnings credited"


def test_sweep_with_pubsub_disabled_keeps_rows_pending_and_reports_them() -> None:
    key = f"test_event:{uuid.uuid4().hex}"
    with get_db().transaction() as conn:
        outbox.emit(conn, "test_event", {"n": 1}, key=key)
    report = outbox.sweep(get_db(), min_age_s=0)
    assert report["pubsub_enabled"] is False and report["published"] == 0 and report["pending"] >= 1
    assert rows(key)[0]["published_at"] is None


@pytest.mark.pubsub
def test_background_publisher_publishes_after_commit_only(pubsub: PubSub) -> None:
    sub = pubsub.pull_subscription(outbox.TOPIC)
    committed = f"test_event:{uuid.uuid4().hex}"
    rolled_back = f"test_event:{uuid.uuid4().hex}"
    with pytest.raises(RuntimeError), get_db().transaction() as conn:
        outbox.emit(conn, "test_event", {"committed": False}, key=rolled_back)
        raise RuntimeError("rolled back")
    with get_db().transaction() as conn:
        outbox.emit(conn, "test_event", {"committed": True}, key=committed)
        time.sleep(0.1)  # the background thread looks before the commit: it must wait for it
    deadline = time.monotonic() + 10
    while rows(committed)[0]["published_at"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    [row] = rows(committed)
    assert row["published_at"] is not None and row["attempts"] == 1 and row["message_id"]
    ours = [m for m in pubsub.pull(sub, want=1, timeout=10, settle=0.5) if m.attributes["key"] in (committed, rolled_back)]
    assert [(m.attributes["key"], m.attributes["event_type"], json.loads(m.data)) for m in ours] == [
        (committed, "test_event", {"committed": True})
    ]


@pytest.mark.pubsub
def test_concurrent_sweeps_publish_each_event_exactly_once(pubsub: PubSub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUTBOX_BACKGROUND_PUBLISH", "false")  # only the sweepers publish here
    get_settings.cache_clear()  # (tests/conftest.py clears it again after the test, once the env is restored)
    sub = pubsub.pull_subscription(outbox.TOPIC)
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
    messages = pubsub.pull(sub, want=published, timeout=20, settle=1.0)
    seen = [m.attributes["key"] for m in messages]
    assert len(seen) == len(set(seen)) == published  # nothing published twice, by either sweeper
    assert set(keys) <= set(seen)
