"""Idempotency-Key leases (issue 16), in-process against the real database: a claim whose attempt died
answers 409 with Retry-After only while its lease runs, and a retry after it finds the committed effect;
a dead database connection in the middle of a request is a 503, and the next request recovers.

A "crash" here is an attempt whose bookkeeping never happens (the answer is not stored, the claim not
released), which is exactly what a killed process leaves behind; tests/crash/ kills real processes.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from shared import idempotency
from shared.db import Query, get_db
from shared.errors import ServiceUnavailable
from tests.helpers import Api, User, error_code
from tests.payouts.test_requests import available_cents, ledger_ok, payee, request

# "the lease has run out": what waiting IDEMPOTENCY_LEASE_S would do, without waiting
EXPIRE = Query(
    "t_idem_expire",
    "UPDATE idempotency_keys SET locked_until = now() - interval '1 second' WHERE key = :key AND status IS NULL",
    prepared=False,
)
KEY_ROW = Query("t_idem_row", "SELECT status, attempt, locked_until FROM idempotency_keys WHERE key = :key", prepared=False)
HOLDS = Query(
    "t_idem_holds",
    "SELECT count(*) FROM earnings WHERE user_id = CAST(:id AS uuid) AND type = 'payout_hold'",
    prepared=False,
)
ADJUSTMENTS = Query(
    "t_idem_adjustments",
    "SELECT count(*) FROM earnings WHERE user_id = CAST(:id AS uuid) AND type = 'adjustment' AND source = 'admin'",
    prepared=False,
)
AUDITED = Query(
    "t_idem_audit",
    "SELECT count(*) FROM audit_log WHERE actor_id = CAST(:a AS uuid) AND action = 'ledger.adjustment_view'",
    prepared=False,
)
TERMINATE_APP_BACKENDS = Query(
    "t_idem_terminate",
    """SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity
        WHERE usename = 'earnpay_app' AND datname = current_database()""",
    prepared=False,
)


@pytest.fixture()
def crash_before_bookkeeping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The process "dies" right after the handler: neither the answer is stored nor the claim released."""
    monkeypatch.setattr(idempotency, "_complete", lambda *a, **k: None)
    monkeypatch.setattr(idempotency, "_release", lambda *a, **k: None)


def _in_progress(resp: Any) -> int:
    assert resp.status_code == 409 and error_code(resp) == "request_in_progress", resp.get_data(as_text=True)
    wait = int(resp.headers["Retry-After"])
    assert wait >= 1 and resp.get_json()["error"]["details"]["retry_after_seconds"] == wait
    return wait


def test_a_payout_whose_answer_was_lost_is_answered_after_the_lease(
    api: Api, owner_conn: Any, monkeypatch: pytest.MonkeyPatch, crash_before_bookkeeping: None
) -> None:
    user = payee(api, owner_conn, cents=5_000)
    key = f"lost-{uuid.uuid4().hex}"
    first = request(api, user, 2_000, key=key)
    assert first.status_code == 201
    monkeypatch.undo()  # the process that comes back stores answers again
    # within the lease: still "in progress", with the lease's remaining seconds
    assert _in_progress(request(api, user, 2_000, key=key)) <= 5
    assert owner_conn.one(KEY_ROW, key=key)["status"] is None
    assert owner_conn.execute(EXPIRE, key=key) == 1
    retry = request(api, user, 2_000, key=key)
    assert retry.status_code == 201, retry.get_data(as_text=True)
    assert retry.get_json()["id"] == first.get_json()["id"]  # found the committed payout, did not make another
    assert owner_conn.value(HOLDS, id=user.id) == 1 and available_cents(user.id) == 3_000
    # the re-run's answer is stored: the next retry is a replay
    replay = request(api, user, 2_000, key=key)
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.get_json()["id"] == first.get_json()["id"]
    # a different body is still refused, lease or not
    assert error_code(request(api, user, 2_500, key=key)) == "idempotency_key_reused"
    assert ledger_ok(user.id)


def test_a_claim_that_died_before_committing_runs_again_once(api: Api, owner_conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    user = payee(api, owner_conn, cents=5_000)
    key = f"died-{uuid.uuid4().hex}"

    def die() -> None:
        raise KeyboardInterrupt  # stands for SIGKILL between the claim and the business transaction

    monkeypatch.setattr(idempotency, "_release", lambda *a, **k: None)
    monkeypatch.setattr(idempotency, "_fault_pause", lambda point, k, taken_over: die() if point == "before_call" else None)
    with pytest.raises(KeyboardInterrupt):
        request(api, user, 1_500, key=key)
    monkeypatch.undo()
    _in_progress(request(api, user, 1_500, key=key))
    owner_conn.execute(EXPIRE, key=key)
    retry = request(api, user, 1_500, key=key)
    assert retry.status_code == 201 and retry.headers.get("Idempotent-Replayed") is None
    assert owner_conn.value(HOLDS, id=user.id) == 1 and available_cents(user.id) == 3_500


def test_a_stale_attempt_cannot_release_its_successors_claim(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    key = f"stale-{uuid.uuid4().hex}"
    with get_db().connection() as conn:
        claimed = conn.one(idempotency.CLAIM, user_id=user.id, key=key, hash=b"h", attempt=str(uuid.uuid4()), lease=30.0)
        assert claimed is not None and not claimed["taken_over"]
        # a second claim within the lease gets nothing; after it, it takes over
        assert conn.one(idempotency.CLAIM, user_id=user.id, key=key, hash=b"h", attempt=str(uuid.uuid4()), lease=30.0) is None
        owner_conn.execute(EXPIRE, key=key)
        successor = str(uuid.uuid4())
        assert conn.one(idempotency.CLAIM, user_id=user.id, key=key, hash=b"h", attempt=successor, lease=30.0)["taken_over"]
        # the first attempt, finally failing, cannot free the key its successor now holds
        assert conn.execute(idempotency.RELEASE, user_id=user.id, key=key, attempt=str(uuid.uuid4())) == 0
        assert conn.execute(idempotency.RELEASE, user_id=user.id, key=key, attempt=successor) == 1
        # a different body never takes a claim over
        conn.one(idempotency.CLAIM, user_id=user.id, key=key, hash=b"h", attempt=str(uuid.uuid4()), lease=30.0)
        owner_conn.execute(EXPIRE, key=key)
        assert conn.one(idempotency.CLAIM, user_id=user.id, key=key, hash=b"other", attempt=str(uuid.uuid4()), lease=30.0) is None


def test_a_release_the_database_refuses_leaves_the_key_only_for_the_lease(
    api: Api, owner_conn: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database goes away during the request: 503 with Retry-After, and the release fails too. The
    claim then answers 409 until its lease runs out, never for ever."""
    user = payee(api, owner_conn, cents=5_000)
    key = f"outage-{uuid.uuid4().hex}"
    from functions.payouts import service

    def outage(*a: Any, **k: Any) -> Any:
        raise ServiceUnavailable("the database is unavailable; try again shortly", code="database_unavailable")

    real_release = idempotency._release
    releases: list[Exception] = []

    def failing_release(*a: Any, **k: Any) -> None:
        try:
            with pytest.MonkeyPatch.context() as m:
                m.setattr(idempotency, "get_db", lambda: (_ for _ in ()).throw(ServiceUnavailable("down")))
                real_release(*a, **k)  # must swallow the failure
        except Exception as exc:  # pragma: no cover - the assertion below reports it
            releases.append(exc)

    monkeypatch.setattr(service, "request_payout", outage)
    monkeypatch.setattr(idempotency, "_release", failing_release)
    resp = request(api, user, 1_000, key=key)
    assert resp.status_code == 503 and resp.headers["Retry-After"] and error_code(resp) == "database_unavailable"
    assert releases == []
    monkeypatch.undo()
    _in_progress(request(api, user, 1_000, key=key))
    owner_conn.execute(EXPIRE, key=key)
    assert request(api, user, 1_000, key=key).status_code == 201
    assert owner_conn.value(HOLDS, id=user.id) == 1


def _adjust(api: Api, admin: User, target: User, key: str, amount: int = 1_234_000) -> Any:
    return api.post(
        "/admin/adjustments",
        user=admin,
        json={"user_id": target.id, "amount_micros": amount, "reason": "crash test"},
        headers={"Idempotency-Key": key},
    )


def _lookup(api: Api, staff: User, target: User, key: str, **extra: str) -> Any:
    query = "&".join([f"user_id={target.id}", f"idempotency_key={key}", *(f"{k}={v}" for k, v in extra.items())])
    return api.get(f"/admin/adjustments?{query}", user=staff)


def test_an_adjustment_answer_commits_with_its_entry_and_is_found_by_key(
    api: Api, owner_conn: Any, monkeypatch: pytest.MonkeyPatch, crash_before_bookkeeping: None
) -> None:
    """The adjustment stores its key's answer in its own transaction: even when the process dies right
    after that commit, the retry replays the entry at once (no 409, no lease to wait for)."""
    admin, support, target = api.staff(owner_conn, "admin"), api.staff(owner_conn, "support"), api.signup()
    key = f"adj-{uuid.uuid4().hex}"
    first = _adjust(api, admin, target, key)
    assert first.status_code == 201
    entry = first.get_json()
    monkeypatch.undo()
    assert owner_conn.one(KEY_ROW, key=key)["status"] == 201
    retry = _adjust(api, admin, target, key)
    assert retry.status_code == 201
    assert retry.headers.get("Idempotent-Replayed") == "true"
    assert retry.get_json() == entry
    # the outcome is knowable without posting at all: the lookup finds the committed entry
    found = _lookup(api, admin, target, key)
    assert found.status_code == 200, found.get_data(as_text=True)
    view = found.get_json()
    assert view["entry_id"] == entry["entry_id"]
    assert view["amount"]["micros"] == 1_234_000
    assert view["reason"] == "crash test"
    assert view["staff_id"] == admin.id
    assert view["idempotency_key"] == key
    # another staff member finds it by naming who posted it
    assert _lookup(api, support, target, key, staff_id=admin.id).get_json()["entry_id"] == entry["entry_id"]
    assert error_code(_lookup(api, support, target, key)) == "adjustment_not_found"  # support's own key: none
    # found reads are audited, as every read of a user's record (a 404 writes nothing, as elsewhere)
    assert owner_conn.value(AUDITED, a=admin.id) == 1
    assert owner_conn.value(AUDITED, a=support.id) == 1
    assert owner_conn.value(ADJUSTMENTS, id=target.id) == 1


def test_an_adjustment_whose_key_record_is_gone_answers_the_committed_entry(api: Api, owner_conn: Any) -> None:
    """A re-run (the key's record purged, or a claim taken over) finds the entry by its ledger key."""
    admin, target = api.staff(owner_conn, "admin"), api.signup()
    key = f"adj-{uuid.uuid4().hex}"
    first = _adjust(api, admin, target, key).get_json()
    owner_conn.execute(Query("t_idem_purge", "DELETE FROM idempotency_keys WHERE key = :key", prepared=False), key=key)
    again = _adjust(api, admin, target, key)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert again.get_json()["entry_id"] == first["entry_id"]
    assert owner_conn.value(ADJUSTMENTS, id=target.id) == 1


def test_an_adjustment_lookup_says_whether_a_key_is_still_in_flight(api: Api, owner_conn: Any) -> None:
    admin, target = api.staff(owner_conn, "admin"), api.signup()
    key = f"adj-{uuid.uuid4().hex}"
    missing = _lookup(api, admin, target, key)
    assert missing.status_code == 404 and missing.get_json()["error"]["details"] == {"in_progress": False}
    with get_db().connection() as conn:  # a request with the key has claimed it and not committed yet
        conn.one(idempotency.CLAIM, user_id=admin.id, key=key, hash=b"h", attempt=str(uuid.uuid4()), lease=30.0)
    assert _lookup(api, admin, target, key).get_json()["error"]["details"] == {"in_progress": True}
    bad = api.get(f"/admin/adjustments?user_id={target.id}", user=admin)
    assert bad.status_code == 422


def test_a_connection_that_dies_mid_request_is_a_503_and_the_next_request_recovers(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=5_000)
    db = get_db()
    with db.connection(), db.connection(), db.connection():  # the pool holds (at least) three connections to kill
        pass
    assert owner_conn.value(TERMINATE_APP_BACKENDS) >= 1
    resp = request(api, user, 1_000, key=f"dead-{uuid.uuid4().hex}")
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert error_code(resp) == "database_unavailable" and int(resp.headers["Retry-After"]) >= 1
    # the dead connection was discarded and its siblings are checked before use: the next request works
    me = api.get("/auth/me", user=user)
    assert me.status_code == 200, me.get_data(as_text=True)
    again = request(api, user, 1_000, key=f"alive-{uuid.uuid4().hex}")
    assert again.status_code == 201, again.get_data(as_text=True)


def test_an_admin_shutdown_of_the_session_is_a_503_in_the_service_layer(owner_conn: Any) -> None:
    """SQLSTATE 57P01 (terminating connection due to administrator command) on a checked-out connection."""
    db = get_db()
    pid_q = Query("t_idem_pid", "SELECT pg_backend_pid()", prepared=False)
    kill = Query("t_idem_kill", "SELECT pg_terminate_backend(:pid, 5000)", prepared=False)
    with pytest.raises(ServiceUnavailable) as err, db.connection() as conn:
        assert owner_conn.value(kill, pid=conn.value(pid_q))
        conn.value(pid_q)
    assert err.value.code == "database_unavailable" and err.value.headers["Retry-After"]
    with db.connection() as conn:
        assert conn.value(pid_q)


def test_kyc_uploads_keep_the_same_contract(
    api: Api, gcs: Any, owner_conn: Any, monkeypatch: pytest.MonkeyPatch, crash_before_bookkeeping: None
) -> None:
    """Every route that accepts Idempotency-Key goes through the same lease: the KYC upload slot too."""
    user: User = api.signup()
    key = f"kyc-{uuid.uuid4().hex}"
    body = {"kind": "passport", "content_type": "application/pdf", "size_bytes": 1000}
    first = api.post("/kyc/documents", user=user, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == 201, first.get_data(as_text=True)
    monkeypatch.undo()
    _in_progress(api.post("/kyc/documents", user=user, json=body, headers={"Idempotency-Key": key}))
    owner_conn.execute(EXPIRE, key=key)
    again = api.post("/kyc/documents", user=user, json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201, again.get_data(as_text=True)
    replay = api.post("/kyc/documents", user=user, json=body, headers={"Idempotency-Key": key})
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.get_json() == again.get_json()


def test_fault_pauses_are_for_tests_only(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from shared.config import ConfigError, Settings

    monkeypatch.setenv("EARNPAY_FAULT_PAUSE", "before_call=2,after_call=0.5,until=/tmp/go")
    assert Settings().fault_pauses == {"before_call": "2", "after_call": "0.5", "until": "/tmp/go"}
    monkeypatch.setenv("DATABASE_URL", "postgresql://earnpay_app@db.internal/earnpay")
    monkeypatch.setenv("EARNPAY_ENV", "production")
    with pytest.raises(ConfigError, match="EARNPAY_FAULT_PAUSE"):
        Settings()
    monkeypatch.setenv("EARNPAY_ENV", "test")
    for bad in ("during_call=1", "before_call=0", "before_call=61", "until="):
        monkeypatch.setenv("EARNPAY_FAULT_PAUSE", bad)
        with pytest.raises(ValidationError):
            Settings()
    monkeypatch.delenv("EARNPAY_FAULT_PAUSE")
    assert Settings().fault_pauses == {} and Settings().idempotency_lease_s == 5.0
