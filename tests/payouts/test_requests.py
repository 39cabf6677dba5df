"""Payout requests: the rules, the hold, idempotency, cancel, privacy, the staff API, the double-spend race."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest
from pg8000.exceptions import DatabaseError
from werkzeug.test import Client

from functions.ledger import service as ledger
from functions.payouts import flows, service
from functions.payouts.models import PayoutCreateBody
from shared.config import get_settings
from shared.db import Query, get_db, sqlstate
from tests.helpers import PASSWORD, Api, User, error_code

SET_KYC = Query("test_set_kyc", "UPDATE users SET kyc_status = :kyc WHERE id = CAST(:id AS uuid)", prepared=False)
SET_STATUS = Query("test_set_status", "UPDATE users SET status = :status WHERE id = CAST(:id AS uuid)", prepared=False)
USER_PAYOUTS = Query(
    "test_user_payouts", "SELECT id::text AS id, status FROM payout_requests WHERE user_id = CAST(:id AS uuid)", prepared=False
)
USER_ENTRIES = Query(
    "test_user_entries",
    "SELECT type, amount, idempotency_key FROM earnings WHERE user_id = CAST(:id AS uuid) ORDER BY seq",
    prepared=False,
)
EVENTS = Query(
    "test_payout_events",
    "SELECT from_state, to_state, actor, reason FROM payout_events WHERE payout_id = CAST(:id AS uuid) ORDER BY id",
    prepared=False,
)


# --- helpers (also used by test_batches.py) ----------------------------------------------------------
def fund(user_id: str, cents: int) -> None:
    with get_db().transaction() as conn:
        ledger.post(
            conn, user_id=user_id, type="adjustment", amount=cents * ledger.MICROS_PER_CENT, idempotency_key=uuid.uuid4().hex, source="test"
        )


def available_cents(user_id: str) -> int:
    with get_db().connection() as conn:
        micros = int(ledger.balance(conn, user_id)["available"])
    assert micros % ledger.MICROS_PER_CENT == 0
    return micros // ledger.MICROS_PER_CENT


def ledger_ok(user_id: str) -> bool:
    with get_db().connection() as conn:
        return bool(ledger.verify(conn, user_id=user_id)["ok"])


def payee(api: Api, owner_conn: Any, *, cents: int = 100_000, kyc: str = "verified", method: bool = True) -> User:
    """A signed-up user with KYC ``kyc``, ``cents`` in the balance and (by default) a PayPal method."""
    user = api.signup()
    owner_conn.execute(SET_KYC, id=user.id, kyc=kyc)
    if cents:
        fund(user.id, cents)
    if method:
        resp = api.post(
            "/payouts/methods", user=user, json={"type": "paypal", "email": f"payee-{user.id[:8]}@example.com", "password": PASSWORD}
        )
        assert resp.status_code == 201, resp.get_data(as_text=True)
    return user


def request(api: Api, user: User, cents: int, *, key: str | None = None, **extra: Any) -> Any:
    headers = {"Idempotency-Key": key} if key else {}
    return api.post("/payouts/", user=user, json={"amount_cents": cents, "password": PASSWORD, **extra}, headers=headers)


def new_payout(user_id: str, cents: int) -> dict[str, Any]:
    """A payout through the service (no HTTP), for staff and batch tests."""
    payout, created = flows.request_payout(get_db(), user_id, PayoutCreateBody(amount_cents=cents, password=PASSWORD))
    assert created
    return payout


def staff_id(api: Api, owner_conn: Any) -> str:
    return api.staff(owner_conn, "finance").id


# --- the happy path ----------------------------------------------------------------------------------
def test_request_holds_at_once_and_records_the_event(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    resp = request(api, user, 2_500)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    payout = resp.get_json()
    assert payout["status"] == "requested" and payout["amount"] == {"micros": 25_000_000, "formatted": "$25.00", "currency": "USD"}
    assert "amount_cents" not in payout and payout["method"]["type"] == "paypal" and "•" not in payout["method"]["label"]
    assert available_cents(user.id) == 7_500
    holds = [e for e in owner_conn.all(USER_ENTRIES, id=user.id) if e["type"] == "payout_hold"]
    assert holds == [{"type": "payout_hold", "amount": -2_500 * 10_000, "idempotency_key": f"payout_hold:{payout['id']}"}]
    assert owner_conn.all(EVENTS, id=payout["id"]) == [
        {"from_state": None, "to_state": "requested", "actor": user.id, "reason": "requested by the user"}
    ]
    one = api.get(f"/payouts/{payout['id']}", user=user).get_json()
    assert one["id"] == payout["id"] and one["events"][0]["to"] == "requested" and one["events"][0]["by"] == "user"
    listed = api.get("/payouts/", user=user).get_json()
    assert [p["id"] for p in listed["items"]] == [payout["id"]] and listed["next_cursor"] is None
    assert ledger_ok(user.id)


def test_list_is_keyset_paginated(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    ids = [request(api, user, 1_000 + i).get_json()["id"] for i in range(3)]
    first = api.get("/payouts/?limit=2", user=user).get_json()
    assert [p["id"] for p in first["items"]] == ids[::-1][:2] and first["next_cursor"]
    second = api.get(f"/payouts/?limit=2&cursor={first['next_cursor']}", user=user).get_json()
    assert [p["id"] for p in second["items"]] == [ids[0]] and second["next_cursor"] is None
    assert [p["id"] for p in api.get("/payouts/?status=cancelled", user=user).get_json()["items"]] == []
    for bad in ("cursor=garbage", "limit=0", "limit=101", "status=lost", "sort=asc"):
        assert api.get(f"/payouts/?{bad}", user=user).status_code == 422, bad


# --- idempotency ------------------------------------------------------------------------------------
def test_idempotency_key_replays_the_first_answer_and_holds_once(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    first = request(api, user, 3_000, key="payout-key-1")
    again = request(api, user, 3_000, key="payout-key-1")
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json() and again.headers.get("Idempotent-Replayed") == "true"
    assert available_cents(user.id) == 7_000
    # same key, different body
    assert request(api, user, 3_001, key="payout-key-1").status_code == 422
    # a crash after our commit but before the HTTP layer stored the answer: the key record is gone,
    # the retry reaches the service again and must find the first payout rather than hold twice
    owner_conn.execute(Query("test_forget_key", "DELETE FROM idempotency_keys WHERE key = 'payout-key-1'", prepared=False))
    retried = request(api, user, 3_000, key="payout-key-1")
    assert retried.status_code == 201 and retried.get_json()["id"] == first.get_json()["id"]
    assert available_cents(user.id) == 7_000
    assert len(owner_conn.all(USER_PAYOUTS, id=user.id)) == 1
    with pytest.raises(Exception) as exc:
        flows.request_payout(get_db(), user.id, PayoutCreateBody(amount_cents=2_000, password=PASSWORD), "payout-key-1")
    assert getattr(exc.value, "code", "") == "idempotency_key_reused"
    assert ledger_ok(user.id)


# --- the rules: each a clear 4xx that writes nothing -------------------------------------------------
def _assert_nothing_written(owner_conn: Any, user: User, cents_before: int) -> None:
    assert owner_conn.all(USER_PAYOUTS, id=user.id) == []
    assert available_cents(user.id) == cents_before


@pytest.mark.parametrize(
    ("setup", "body", "status", "code"),
    [
        ("kyc_pending", {"amount_cents": 2_000}, 403, "kyc_required"),
        ("suspended", {"amount_cents": 2_000}, 403, "account_inactive"),  # refused at sign-in check already
        ("ok", {"amount_cents": 2_000, "password": "wrong password!"}, 401, "reauthentication_failed"),
        ("ok", {"amount_cents": 999}, 422, "amount_below_minimum"),
        ("ok", {"amount_cents": 5_001}, 409, "insufficient_funds"),
        ("no_method", {"amount_cents": 2_000}, 422, "no_payout_method"),
        ("ok", {"amount_cents": 2_000, "method_id": str(uuid.uuid4())}, 404, "payout_method_not_found"),
        ("ok", {"amount_cents": 2_000.5}, 422, "validation_failed"),
        ("ok", {"amount_cents": 2_000.0}, 422, "validation_failed"),
        ("ok", {"amount_cents": "2000"}, 422, "validation_failed"),
        ("ok", {"amount_cents": -2_000}, 422, "validation_failed"),
        ("ok", {"amount_cents": 0}, 422, "validation_failed"),
        ("ok", {"amount_cents": True}, 422, "validation_failed"),
        ("ok", {"amount_cents": 10**30}, 422, "validation_failed"),
        ("ok", {"amount_cents": 2_000, "currency": "EUR"}, 422, "validation_failed"),
        ("ok", {"amount_cents": 2_000, "method_id": "not-a-uuid"}, 422, "validation_failed"),
        ("ok", {}, 422, "validation_failed"),
    ],
)
def test_rules_give_a_clear_4xx_and_write_nothing(
    api: Api, owner_conn: Any, setup: str, body: dict[str, Any], status: int, code: str
) -> None:
    user = payee(api, owner_conn, cents=5_000, kyc="in_review" if setup == "kyc_pending" else "verified", method=setup != "no_method")
    if setup == "suspended":
        owner_conn.execute(SET_STATUS, id=user.id, status="suspended")
    payload = {"password": PASSWORD, **body} if body else {}
    resp = api.post("/payouts/", user=user, json=payload)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert error_code(resp) == code
    _assert_nothing_written(owner_conn, user, 5_000)


def test_malformed_bodies(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=5_000)
    assert api.post("/payouts/", user=user, data="{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert api.post("/payouts/", user=user, json=[1, 2]).status_code == 422
    assert api.post("/payouts/", user=user, data="amount_cents=2000", headers={"Content-Type": "text/plain"}).status_code == 415
    assert api.post("/payouts/", json={"amount_cents": 2_000, "password": PASSWORD}).status_code == 401
    _assert_nothing_written(owner_conn, user, 5_000)


def test_the_minimum_is_configurable(api: Api, owner_conn: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOUT_MINIMUM_CENTS", "2500")
    get_settings.cache_clear()  # read at call time: no restart needed (tests/conftest.py clears it again after the test)
    user = payee(api, owner_conn, cents=5_000)
    resp = request(api, user, 2_000)
    assert resp.status_code == 422 and resp.get_json()["error"]["details"] == {
        "minimum": {"micros": 25_000_000, "formatted": "$25.00", "currency": "USD"}
    }
    assert request(api, user, 2_500).status_code == 201


# --- cancel and privacy ------------------------------------------------------------------------------
def test_cancel_releases_the_hold_once(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    payout = request(api, user, 4_000).get_json()
    assert available_cents(user.id) == 6_000
    resp = api.post(f"/payouts/{payout['id']}/cancel", user=user)
    assert resp.status_code == 200 and resp.get_json()["status"] == "cancelled"
    assert available_cents(user.id) == 10_000
    again = api.post(f"/payouts/{payout['id']}/cancel", user=user)
    assert again.status_code == 200 and again.get_json()["status"] == "cancelled"
    assert available_cents(user.id) == 10_000
    releases = [e for e in owner_conn.all(USER_ENTRIES, id=user.id) if e["type"] == "payout_release"]
    assert releases == [{"type": "payout_release", "amount": 40_000_000, "idempotency_key": f"payout_release:{payout['id']}"}]
    assert [e["to_state"] for e in owner_conn.all(EVENTS, id=payout["id"])] == ["requested", "cancelled"]
    assert ledger_ok(user.id)


def test_cannot_cancel_once_approved(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    payout = request(api, user, 4_000).get_json()
    with get_db().connection() as conn:
        service.approve(conn, payout["id"], staff_id(api, owner_conn))
    resp = api.post(f"/payouts/{payout['id']}/cancel", user=user)
    assert resp.status_code == 409 and error_code(resp) == "payout_not_cancellable"
    assert available_cents(user.id) == 6_000


def test_users_cannot_see_or_cancel_each_others_payouts(api: Api, owner_conn: Any) -> None:
    alice = payee(api, owner_conn, cents=10_000)
    mallory = payee(api, owner_conn, cents=10_000)
    payout = request(api, alice, 2_000).get_json()
    for resp in (api.get(f"/payouts/{payout['id']}", user=mallory), api.post(f"/payouts/{payout['id']}/cancel", user=mallory)):
        assert resp.status_code == 404 and error_code(resp) == "payout_not_found"
    assert api.get("/payouts/", user=mallory).get_json()["items"] == []
    # nor pay out to someone else's method
    alice_method = api.get("/payouts/methods", user=alice).get_json()["items"][0]["id"]
    resp = request(api, mallory, 2_000, method_id=alice_method)
    assert resp.status_code == 404 and error_code(resp) == "payout_method_not_found"
    assert api.get("/payouts/not-a-uuid", user=mallory).status_code == 404
    assert api.get(f"/payouts/{payout['id']}").status_code == 401
    assert api.get(f"/payouts/{payout['id']}", user=alice).get_json()["status"] == "requested"


# --- the staff API ------------------------------------------------------------------------------------
def test_approve_and_reject_for_the_admin_function(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=20_000)
    finance = staff_id(api, owner_conn)
    a, r = new_payout(user.id, 3_000), new_payout(user.id, 4_000)
    with get_db().connection() as conn:
        queue = service.list_for_review(conn, "requested", limit=200)
        assert {a["id"], r["id"]} <= {p["id"] for p in queue["items"]}
        approved = service.approve(conn, a["id"], finance)
        assert approved["before"]["status"] == "requested"
        assert approved["after"]["status"] == "approved"
        assert approved["after"]["decided_by"] == finance
        assert approved["after"]["user_id"] == user.id
        with pytest.raises(Exception) as exc:
            service.approve(conn, a["id"], finance)
        assert getattr(exc.value, "code", "") == "payout_not_pending"
        with pytest.raises(Exception) as exc:
            service.reject(conn, r["id"], finance, "   ")
        assert getattr(exc.value, "code", "") == "reason_required"
        rejected = service.reject(conn, r["id"], finance, "  duplicate   account ")
        assert rejected["after"]["status"] == "rejected"
        assert rejected["after"]["reject_reason"] == "duplicate account"
        for bad in (str(uuid.uuid4()), "nope"):
            with pytest.raises(Exception) as exc:
                service.approve(conn, bad, finance)
            assert getattr(exc.value, "code", "") == "payout_not_found"
        with pytest.raises(Exception) as exc:
            service.approve(conn, new_payout(user.id, 1_000)["id"], user.id)
        assert getattr(exc.value, "code", "") == "own_payout"
        with pytest.raises(Exception) as exc:
            service.list_for_review(conn, "lost")
        assert getattr(exc.value, "code", "") == "invalid_status"
        detail = service.get_for_staff(conn, r["id"])
    assert [(e["to_state"], e["actor"]) for e in detail["events"]] == [("requested", user.id), ("rejected", finance)]
    assert detail["events"][-1]["reason"] == "duplicate account"
    assert available_cents(user.id) == 20_000 - 3_000 - 1_000  # the rejected 4,000 came back
    seen = api.get(f"/payouts/{r['id']}", user=user).get_json()
    assert seen["status"] == "rejected"
    assert seen["events"][-1]["by"] == "staff"
    assert finance not in str(seen)
    assert ledger_ok(user.id)


def test_approve_in_the_callers_transaction_rolls_back_with_it(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    payout = new_payout(user.id, 2_000)
    with get_db().connection() as conn:
        with pytest.raises(RuntimeError), conn.transaction():
            service.approve(conn, payout["id"], staff_id(api, owner_conn))
            raise RuntimeError("the audit insert failed")
        assert service.get_for_staff(conn, payout["id"])["status"] == "requested"


def test_approve_refuses_an_owner_no_longer_eligible(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    payout = new_payout(user.id, 2_000)
    owner_conn.execute(SET_STATUS, id=user.id, status="blocked")
    with get_db().connection() as conn, pytest.raises(Exception) as exc:
        service.approve(conn, payout["id"], staff_id(api, owner_conn))
    assert getattr(exc.value, "code", "") == "payout_user_not_eligible"


def test_cancel_racing_approval_has_one_outcome(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=100_000)
    finance = staff_id(api, owner_conn)
    payouts = [new_payout(user.id, 1_000) for _ in range(12)]
    outcomes: dict[str, list[str]] = {p["id"]: [] for p in payouts}

    def race(pid: str) -> None:
        barrier = threading.Barrier(2)

        def cancel() -> None:
            barrier.wait()
            try:
                with get_db().transaction() as conn:
                    service.cancel_payout(conn, user.id, pid)
                outcomes[pid].append("cancelled")
            except Exception as exc:
                outcomes[pid].append(getattr(exc, "code", repr(exc)))

        def approve() -> None:
            barrier.wait()
            try:
                with get_db().connection() as conn:
                    service.approve(conn, pid, finance)
                outcomes[pid].append("approved")
            except Exception as exc:
                outcomes[pid].append(getattr(exc, "code", repr(exc)))

        threads = [threading.Thread(target=cancel), threading.Thread(target=approve)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    for p in payouts:
        race(p["id"])
    cancelled = 0
    with get_db().connection() as conn:
        for pid, results in outcomes.items():
            final = service.get_for_staff(conn, pid)
            assert sorted(results) in (["approved", "payout_not_cancellable"], ["cancelled", "payout_not_pending"]), results
            assert final["status"] == ("cancelled" if "cancelled" in results else "approved")
            assert [e["to_state"] for e in final["events"]] == ["requested", final["status"]]
            cancelled += final["status"] == "cancelled"
    releases = [e for e in owner_conn.all(USER_ENTRIES, id=user.id) if e["type"] == "payout_release"]
    assert len(releases) == cancelled
    assert available_cents(user.id) == 100_000 - 1_000 * (12 - cancelled)
    assert ledger_ok(user.id)


# --- invariants in the database -----------------------------------------------------------------------
def test_the_database_enforces_transitions_and_append_only_events(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    payout = new_payout(user.id, 2_000)
    for sql, state in (
        ("UPDATE payout_requests SET status = 'paid', completed_at = now() WHERE id = CAST(:id AS uuid)", "EP020"),
        ("UPDATE payout_requests SET amount_cents = 1 WHERE id = CAST(:id AS uuid)", "EP022"),
        ("UPDATE payout_events SET reason = 'x' WHERE payout_id = CAST(:id AS uuid)", "EP021"),
        ("DELETE FROM payout_events WHERE payout_id = CAST(:id AS uuid)", "EP021"),
    ):
        with pytest.raises(DatabaseError) as exc:
            owner_conn.execute(Query("test_illegal", sql, prepared=False), id=payout["id"])
        assert sqlstate(exc.value) == state, sql
    # the application role cannot forge history or skip the hold
    with get_db().connection() as conn:
        for sql in (
            "INSERT INTO payout_events (payout_id, to_state, actor, attempt) VALUES (CAST(:id AS uuid), 'paid', 'x', 0)",
            "DELETE FROM payout_requests WHERE id = CAST(:id AS uuid)",
            "UPDATE payout_requests SET amount_cents = 1 WHERE id = CAST(:id AS uuid)",
        ):
            with pytest.raises(DatabaseError) as exc:
                conn.execute(Query("test_forbidden", sql, prepared=False), id=payout["id"])
            assert sqlstate(exc.value) == "42501", sql


# --- double spend -------------------------------------------------------------------------------------
def test_one_hundred_concurrent_requests_never_overdraw(api: Api, apps: Any, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000)
    barrier = threading.Barrier(100)
    statuses: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        client = Api(Client(apps))
        barrier.wait()
        resp = client.post(
            "/payouts/",
            user=user,
            json={"amount_cents": 1_500, "password": PASSWORD},
            headers={"Idempotency-Key": f"race-{i}"} if i % 2 else {},
        )
        with lock:
            statuses.append(resp.status_code)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(statuses) == 100
    assert set(statuses) <= {201, 409, 503}, statuses
    succeeded = statuses.count(201)
    assert succeeded == len(owner_conn.all(USER_PAYOUTS, id=user.id))
    assert available_cents(user.id) == 10_000 - 1_500 * succeeded >= 0
    assert succeeded == 6  # 6 x 15.00 fits in 100.00, a 7th never does
    assert ledger_ok(user.id)
