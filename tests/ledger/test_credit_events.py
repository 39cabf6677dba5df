"""credit_earnings: credit requests from Pub/Sub applied exactly once, bad ones dead-lettered, transient failures retried.

The first part drives the real functions-framework app with the exact bodies Pub/Sub push and
Eventarc deliver; the last part runs end to end against the real Pub/Sub emulator (skipped, with
the reason, where the machine has none).
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from werkzeug.test import Client, TestResponse

from shared import db as shared_db
from shared.config import get_settings
from shared.db import Database, Query, get_db
from tests.fixtures.pubsub import PubSub, free_port
from tests.helpers import Api

# Credits clear at once here: these tests are about other rules (clearing: tests/ledger/test_clearing.py).
pytestmark = pytest.mark.usefixtures("immediate_clearing")

TOPIC = "earnings-credit-requests"
SUBSCRIPTION = "projects/earnpay-test/subscriptions/credit-earnings-push"

ENTRIES_BY_KEY = Query(
    "t_credit_entries",
    """SELECT id, user_id::text AS user_id, type, amount, source, reference, metadata
         FROM earnings WHERE idempotency_key = :key""",
    prepared=False,
)
REQUEST_ROW = Query(
    "t_credit_request_row",
    "SELECT user_id::text AS user_id, type, amount, entry_id, message_id FROM credit_requests WHERE source = :source AND request_id = :rid",
    prepared=False,
)
DEAD_LETTERS = Query(
    "t_credit_dead_letters",
    "SELECT code, reason, payload FROM dead_letters WHERE source = 'credit_earnings' AND message_id = :mid",
    prepared=False,
)
DEAD_LETTERS_LIKE = Query(
    "t_credit_dead_letters_like",
    "SELECT code, reason, message_id FROM dead_letters WHERE source = 'credit_earnings' AND payload LIKE :pattern",
    prepared=False,
)
BALANCE = Query("t_credit_balance", "SELECT available FROM balances WHERE user_id = CAST(:u AS uuid)", prepared=False)
TERMINATE_APP_BACKENDS = Query(
    "t_terminate_app_backends",
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = 'earnpay_app' AND datname = current_database()",
    prepared=False,
)


def credit(user_id: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "request_id": f"req-{uuid.uuid4().hex}",
        "user_id": user_id,
        "amount_micros": 12_345,
        "type": "video_reward",
        "source": "offerwall:acme",
        "reference": "offer-42",
        "metadata": {"campaign": "spring"},
    }
    body.update(over)
    return body


def push_body(payload: Any, *, message_id: str | None = None, raw: bytes | None = None) -> dict[str, Any]:
    """The JSON body of a Pub/Sub push request."""
    data = raw if raw is not None else json.dumps(payload).encode()
    return {
        "message": {
            "data": base64.b64encode(data).decode(),
            "messageId": message_id or str(uuid.uuid4().int)[:16],
            "publishTime": "2026-01-01T00:00:00.000Z",
            "attributes": {"publisher": "acme"},
        },
        "subscription": SUBSCRIPTION,
    }


def deliver(client: Client, body: dict[str, Any], *, mode: str = "push") -> TestResponse:
    """POSTs to /credit_earnings as Pub/Sub push ("push") or as Eventarc's binary CloudEvent ("binary")."""
    if mode == "push":
        return client.post("/credit_earnings", json=body)
    headers = {
        "ce-specversion": "1.0",
        "ce-type": "google.cloud.pubsub.topic.v1.messagePublished",
        "ce-source": f"//pubsub.googleapis.com/projects/earnpay-test/topics/{TOPIC}",
        "ce-id": body["message"]["messageId"],
        "ce-time": "2026-01-01T00:00:00.000Z",
    }
    return client.post("/credit_earnings", json=body, headers=headers)


def entries(key: str) -> list[dict[str, Any]]:
    with get_db().connection() as conn:
        return conn.all(ENTRIES_BY_KEY, key=key)


def balance(user_id: str) -> int:
    with get_db().connection() as conn:
        return int(conn.value(BALANCE, u=user_id))


def failed_logs(caplog: pytest.LogCaptureFixture, *bodies: dict[str, Any]) -> list[logging.LogRecord]:
    """ERROR ``credit_failed`` records, only those of ``bodies``' messages when given (the session's
    live server may be handling another test's emulator redeliveries in a thread meanwhile)."""
    ids = {b["message"]["messageId"] for b in bodies}
    return [
        r
        for r in caplog.records
        if getattr(r, "event", None) == "credit_failed"
        and r.levelno == logging.ERROR
        and (not ids or getattr(r, "message_id", None) in ids)
    ]


@pytest.mark.parametrize("mode", ["push", "binary"])
def test_credit_applies_once_however_often_delivered(api: Api, client: Client, mode: str) -> None:
    user = api.signup()
    req = credit(user.id)
    body = push_body(req)
    first = deliver(client, body, mode=mode)
    assert first.status_code == 200, first.get_data(as_text=True)
    key = f"credit:{req['source']}:{req['request_id']}"
    [entry] = entries(key)
    assert entry["user_id"] == user.id and entry["amount"] == 12_345 and entry["type"] == "video_reward"
    assert entry["source"] == "offerwall:acme" and entry["reference"] == "offer-42"
    assert entry["metadata"] == {"request_id": req["request_id"], "publisher": {"campaign": "spring"}}
    # the same message redelivered, and the same request republished as a new message
    assert deliver(client, body, mode=mode).status_code == 200
    assert deliver(client, push_body(req), mode=mode).status_code == 200
    assert len(entries(key)) == 1
    assert balance(user.id) == 12_345
    with get_db().connection() as conn:
        row = conn.one(REQUEST_ROW, source=req["source"], rid=req["request_id"])
    assert row is not None and row["entry_id"] == entry["id"] and row["message_id"] == body["message"]["messageId"]
    assert row["user_id"] == user.id and row["amount"] == 12_345


def test_concurrent_deliveries_give_one_entry(api: Api, apps: Any) -> None:
    user = api.signup()
    req = credit(user.id, amount_micros=777)
    bodies = [push_body(req, message_id="same-message") for _ in range(6)] + [push_body(req) for _ in range(6)]
    statuses: list[int] = []
    barrier = threading.Barrier(len(bodies))

    def worker(body: dict[str, Any]) -> None:
        c = Client(apps)
        barrier.wait()
        statuses.append(deliver(c, body).status_code)

    threads = [threading.Thread(target=worker, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * len(bodies)
    assert len(entries(f"credit:{req['source']}:{req['request_id']}")) == 1
    assert balance(user.id) == 777


@contextmanager
def database_down() -> Iterator[None]:
    """The process's pool replaced by one whose server does not answer (the real one restored afterwards)."""
    settings = get_settings().model_copy(update={"database_url": f"postgresql://earnpay_app@127.0.0.1:{free_port()}/nothing"})
    broken = Database(settings)
    real = get_db()
    shared_db._primary = broken
    try:
        yield
    finally:
        shared_db._primary = real
        broken.dispose()


def test_database_down_is_retried_then_applies_once(api: Api, client: Client, caplog: pytest.LogCaptureFixture) -> None:
    user = api.signup()
    req = credit(user.id, amount_micros=5_000)
    body = push_body(req)
    key = f"credit:{req['source']}:{req['request_id']}"
    with database_down():
        resp = deliver(client, body)
    assert resp.status_code == 500  # not acknowledged: Pub/Sub redelivers
    [record] = failed_logs(caplog, body)
    assert record.retry is True and record.failure == "database_unavailable"  # type: ignore[attr-defined]
    assert entries(key) == []
    assert deliver(client, body).status_code == 200
    assert deliver(client, body).status_code == 200
    assert len(entries(key)) == 1 and balance(user.id) == 5_000


def test_broken_connections_are_retried_then_apply_once(
    api: Api, client: Client, owner_conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    user = api.signup()
    req = credit(user.id, amount_micros=9_000)
    body = push_body(req)
    key = f"credit:{req['source']}:{req['request_id']}"
    assert owner_conn.value(TERMINATE_APP_BACKENDS) >= 1  # every pooled connection of the app dies under it
    statuses = []
    for _ in range(get_settings().db_pool_size + 2):  # Pub/Sub's redeliveries
        status = deliver(client, body).status_code
        statuses.append(status)
        if status == 200:
            break
    assert statuses[0] == 500 and statuses[-1] == 200, statuses
    assert all(r.retry for r in failed_logs(caplog, body))  # type: ignore[attr-defined]
    assert len(failed_logs(caplog, body)) == len(statuses) - 1
    assert deliver(client, body).status_code == 200
    assert len(entries(key)) == 1 and balance(user.id) == 9_000


BAD_REQUESTS: list[tuple[str, Any, str]] = [
    ("unknown user", {"user_id": "00000000-0000-4000-8000-000000000000"}, "unknown_user"),
    ("user id not a uuid", {"user_id": "bob"}, "invalid_credit_request"),
    ("negative amount", {"amount_micros": -5}, "invalid_credit_request"),
    ("zero amount", {"amount_micros": 0}, "invalid_credit_request"),
    ("float amount", {"amount_micros": 12.5}, "invalid_credit_request"),
    ("string amount", {"amount_micros": "100"}, "invalid_credit_request"),
    ("boolean amount", {"amount_micros": True}, "invalid_credit_request"),
    ("amount too large", {"amount_micros": 10**15}, "invalid_credit_request"),
    ("internal type", {"type": "login_bonus"}, "invalid_credit_request"),
    ("debit type", {"type": "payout_hold"}, "invalid_credit_request"),
    ("unknown type", {"type": "free_money"}, "invalid_credit_request"),
    ("colon in request id", {"request_id": "a:b"}, "invalid_credit_request"),
    ("empty request id", {"request_id": ""}, "invalid_credit_request"),
    ("bad source", {"source": "Acme Corp"}, "invalid_credit_request"),
    ("unknown field", {"bonus": 1}, "invalid_credit_request"),
    ("missing field", {"amount_micros": None}, "invalid_credit_request"),
]


def test_the_credit_limit_is_read_when_a_request_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.ledger import credits
    from shared.errors import PermanentEventError

    raw = json.dumps(credit(str(uuid.uuid4()), amount_micros=5_000))
    assert credits.parse(raw).amount_micros == 5_000
    assert credits.max_credit_micros() == 1_000_000_000  # $1,000 by default
    monkeypatch.setenv("CREDIT_REQUEST_MAX_MICROS", "4999")
    get_settings.cache_clear()  # no re-import: the limit is read per request (tests/conftest.py clears it again after)
    with pytest.raises(PermanentEventError, match="at most 4999"):
        credits.parse(raw)


@pytest.mark.parametrize(("name", "over", "code"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_impossible_requests_are_dead_lettered_and_acked(
    api: Api, client: Client, caplog: pytest.LogCaptureFixture, name: str, over: dict[str, Any], code: str
) -> None:
    user = api.signup()
    req = {k: v for k, v in {**credit(user.id), **over}.items() if v is not None}
    body = push_body(req)
    resp = deliver(client, body)
    assert resp.status_code == 200  # acknowledged: never retried forever
    with get_db().connection() as conn:
        [dead] = conn.all(DEAD_LETTERS, mid=body["message"]["messageId"])
    assert dead["code"] == code and dead["reason"]
    assert json.loads(dead["payload"]) == req
    [record] = failed_logs(caplog, body)
    assert record.retry is False and record.failure == code  # type: ignore[attr-defined]
    assert balance(user.id) == 0


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"not json at all", "malformed_message"),
        (b"[1, 2]", "malformed_message"),
        (b"\xff\xfe", "malformed_message"),
        (b'{"user_id":' + b"[" * 1_500 + b"]" * 1_500 + b"}", "malformed_message"),  # too deep to parse: never retried
    ],
)
def test_malformed_messages_are_dead_lettered(client: Client, caplog: pytest.LogCaptureFixture, raw: bytes, code: str) -> None:
    body = push_body(None, raw=raw)
    assert deliver(client, body).status_code == 200
    with get_db().connection() as conn:  # (shared.events records no message id when the data cannot be decoded)
        [dead] = conn.all(DEAD_LETTERS_LIKE, pattern=f"%{body['message']['data']}%")
    assert dead["code"] == code
    [record] = failed_logs(caplog, body)
    assert record.retry is False and record.message_id == body["message"]["messageId"]  # type: ignore[attr-defined]


def test_same_request_id_for_another_user_or_amount_is_a_conflicting_duplicate(
    api: Api, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    alice, bob = api.signup(), api.signup()
    req = credit(alice.id, amount_micros=1_000)
    assert deliver(client, push_body(req)).status_code == 200
    key = f"credit:{req['source']}:{req['request_id']}"
    conflicting = []
    for variant in ({**req, "user_id": bob.id}, {**req, "amount_micros": 2_000}, {**req, "reference": "another"}):
        body = push_body(variant)
        conflicting.append(body)
        assert deliver(client, body).status_code == 200
        with get_db().connection() as conn:
            [dead] = conn.all(DEAD_LETTERS, mid=body["message"]["messageId"])
        assert dead["code"] == "conflicting_duplicate", dead
    assert [e["user_id"] for e in entries(key)] == [alice.id]
    assert balance(alice.id) == 1_000 and balance(bob.id) == 0
    assert [r.failure for r in failed_logs(caplog, *conflicting)] == ["conflicting_duplicate"] * 3  # type: ignore[attr-defined]
    # metadata is informational: the same money with other metadata is the same request
    assert deliver(client, push_body({**req, "metadata": {"retry": 2}})).status_code == 200
    assert len(entries(key)) == 1


# --- end to end against the real Pub/Sub emulator -----------------------------------------------
def _wait(predicate: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


@pytest.fixture()
def push_subscription(pubsub: PubSub, live_server: str) -> str:
    """A push subscription on earnings-credit-requests to the live /credit_earnings, with retries and a dead-letter topic."""
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]
    from google.protobuf import duration_pb2

    pubsub.ensure_topic(TOPIC)
    dlq = pubsub.ensure_topic(f"{TOPIC}-dead-letter")
    name = pubsub.subscription_path(f"credit-push-{uuid.uuid4().hex[:8]}")
    pubsub.subscriber.create_subscription(
        request={
            "name": name,
            "topic": pubsub.topic_path(TOPIC),
            "push_config": pubsub_v1.types.PushConfig(push_endpoint=f"{live_server}/credit_earnings"),
            "ack_deadline_seconds": 10,
            "dead_letter_policy": pubsub_v1.types.DeadLetterPolicy(dead_letter_topic=dlq, max_delivery_attempts=5),
            "retry_policy": pubsub_v1.types.RetryPolicy(
                minimum_backoff=duration_pb2.Duration(seconds=0, nanos=200_000_000), maximum_backoff=duration_pb2.Duration(seconds=2)
            ),
        }
    )
    yield name
    pubsub.subscriber.delete_subscription(request={"subscription": name})


@pytest.mark.pubsub
def test_emulator_push_credits_once_and_dead_letters_malformed(
    api: Api, pubsub: PubSub, push_subscription: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = api.signup()
    dlq_pull = pubsub.pull_subscription(f"{TOPIC}-dead-letter")
    req = credit(user.id, amount_micros=4_321)
    key = f"credit:{req['source']}:{req['request_id']}"
    pubsub.publish(TOPIC, json.dumps(req).encode())
    assert _wait(lambda: entries(key), timeout=10), "the credit did not arrive through the push subscription"
    pubsub.publish(TOPIC, json.dumps(req).encode())  # a duplicate publish
    malformed = f"not json {uuid.uuid4().hex}".encode()
    marker = base64.b64encode(malformed).decode()  # what dead_letters keeps of undecodable data
    pubsub.publish(TOPIC, malformed)
    with get_db().connection() as conn:
        dead = _wait(lambda: conn.all(DEAD_LETTERS_LIKE, pattern=f"%{marker}%"), timeout=10)
    assert [d["code"] for d in dead] == ["malformed_message"]
    messages = pubsub.pull(dlq_pull, want=1, timeout=10)
    assert [json.loads(m.data)["code"] for m in messages] == ["malformed_message"]
    assert marker in json.loads(messages[0].data)["payload"] and messages[0].attributes["source"] == "credit_earnings"
    _wait(lambda: len([r for r in caplog.records if getattr(r, "event", None) == "credit_duplicate"]) >= 1, timeout=10)
    assert len(entries(key)) == 1 and balance(user.id) == 4_321
    assert any(r.failure == "malformed_message" for r in failed_logs(caplog))  # type: ignore[attr-defined]


@pytest.mark.pubsub
def test_emulator_redelivers_after_a_transient_failure(
    api: Api, pubsub: PubSub, push_subscription: str, caplog: pytest.LogCaptureFixture
) -> None:
    user = api.signup()
    req = credit(user.id, amount_micros=2_468)
    key = f"credit:{req['source']}:{req['request_id']}"
    with database_down():
        pubsub.publish(TOPIC, json.dumps(req).encode())
        assert _wait(lambda: any(r.retry for r in failed_logs(caplog)), timeout=10), "the push never arrived"  # type: ignore[attr-defined]
    assert _wait(lambda: entries(key), timeout=15), "Pub/Sub did not redeliver after the failure"
    time.sleep(0.5)
    assert len(entries(key)) == 1 and balance(user.id) == 2_468
