"""Removing a payout method: the encrypted details are destroyed, history keeps the masked label, never
while a payout to it is in flight, and the default moves to the newest remaining method."""

from __future__ import annotations

import threading
from typing import Any

from functions.payouts import flows, service
from functions.payouts.models import PayoutCreateBody
from shared.db import Query, get_db
from tests.helpers import PASSWORD, Api, User, error_code
from tests.payouts.test_requests import payee, request, staff_id

METHODS = "/payouts/methods"
RAW_METHOD = Query(
    "t_rm_raw_method", "SELECT label, details, erased_at, is_default FROM payout_methods WHERE id = CAST(:id AS uuid)", prepared=False
)
IN_FLIGHT_ON_REMOVED = Query(
    "t_rm_in_flight_on_removed",
    """SELECT count(*) FROM payout_requests p JOIN payout_methods m ON m.id = p.method_id
        WHERE p.user_id = CAST(:u AS uuid) AND p.status IN ('requested', 'approved', 'submitted') AND m.erased_at IS NOT NULL""",
    prepared=False,
)


def _add(api: Api, user: User, email: str, **extra: Any) -> dict[str, Any]:
    resp = api.post(METHODS, user=user, json={"type": "paypal", "email": email, "password": PASSWORD, **extra})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return dict(resp.get_json())


def _remove(api: Api, user: User, method_id: str) -> Any:
    return api.call("DELETE", f"{METHODS}/{method_id}", user=user)


def _methods(api: Api, user: User) -> list[dict[str, Any]]:
    return list(api.get(METHODS, user=user).get_json()["items"])


def test_removal_destroys_the_details_keeps_the_history_and_moves_the_default(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000, method=False)
    first = _add(api, user, "first.payee@example.com")
    second = _add(api, user, "second.payee@example.com")
    third = _add(api, user, "third.payee@example.com")
    assert first["is_default"]
    assert not second["is_default"]
    assert not third["is_default"]
    paid_to_first = request(api, user, 2_000, method_id=first["id"]).get_json()
    assert api.post(f"/payouts/{paid_to_first['id']}/cancel", user=user).status_code == 200

    resp = _remove(api, user, first["id"])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["id"] == first["id"]
    assert body["removed_at"]
    assert body["default_method"]["id"] == third["id"], "the newest remaining method becomes the default"
    assert [(m["id"], m["is_default"]) for m in _methods(api, user)] == [(second["id"], False), (third["id"], True)]
    # crypto-shredded: the envelope (and the data key inside it) is gone; the masked label stays
    raw = owner_conn.one(RAW_METHOD, id=first["id"])
    assert raw["details"] is None
    assert raw["erased_at"] is not None
    assert raw["is_default"] is False
    assert raw["label"] == first["label"] == "PayPal f***e@example.com"
    # the payout that used it still shows where it went
    history = api.get(f"/payouts/{paid_to_first['id']}", user=user).get_json()
    assert history["method"] == {"id": first["id"], "type": "paypal", "label": first["label"]}

    # a removed method is gone for every use
    again = _remove(api, user, first["id"])
    assert again.status_code == 404
    assert error_code(again) == "payout_method_not_found"
    assert api.post(f"{METHODS}/{first['id']}/default", user=user).status_code == 404
    use = request(api, user, 1_000, method_id=first["id"])
    assert use.status_code == 404
    assert error_code(use) == "payout_method_not_found"

    # removing a method that is not the default leaves the default alone
    kept = _remove(api, user, second["id"]).get_json()
    assert kept["default_method"]["id"] == third["id"]


def test_a_method_with_a_payout_in_flight_cannot_be_removed(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000, method=False)
    method = _add(api, user, "busy.payee@example.com")
    pending = request(api, user, 1_500).get_json()
    approved = request(api, user, 1_500).get_json()
    with get_db().connection() as conn:
        service.approve(conn, approved["id"], staff_id(api, owner_conn))
    refused = _remove(api, user, method["id"])
    assert refused.status_code == 409 and error_code(refused) == "payout_method_in_use"
    assert refused.get_json()["error"]["details"] == {"payouts_in_flight": 2}
    assert owner_conn.one(RAW_METHOD, id=method["id"])["details"] is not None, "a refused removal changes nothing"
    assert [m["id"] for m in _methods(api, user)] == [method["id"]]
    assert api.post(f"/payouts/{pending['id']}/cancel", user=user).status_code == 200
    still = _remove(api, user, method["id"])
    assert still.status_code == 409 and still.get_json()["error"]["details"] == {"payouts_in_flight": 1}


def test_removing_the_last_method_leaves_no_default(api: Api, owner_conn: Any) -> None:
    user = payee(api, owner_conn, cents=10_000, method=False)
    only = _add(api, user, "only.payee@example.com")
    resp = _remove(api, user, only["id"])
    assert resp.status_code == 200 and resp.get_json()["default_method"] is None
    assert _methods(api, user) == []
    none = request(api, user, 1_000)
    assert none.status_code == 422 and error_code(none) == "no_payout_method"
    # and a new method becomes the default again
    assert _add(api, user, "next.payee@example.com")["is_default"] is True


def test_bad_and_foreign_ids_are_404_and_change_nothing(api: Api, owner_conn: Any) -> None:
    alice, mallory = payee(api, owner_conn, method=False), api.signup()
    method = _add(api, alice, "alice.payee@example.com")
    for target in (method["id"], "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        resp = _remove(api, mallory, target)
        assert resp.status_code == 404 and error_code(resp) == "payout_method_not_found", resp.get_data(as_text=True)
    assert api.call("DELETE", f"{METHODS}/{method['id']}").status_code == 401
    assert owner_conn.one(RAW_METHOD, id=method["id"])["details"] is not None


def _race_once(api: Api, owner_conn: Any) -> tuple[str, str]:
    """One removal and one payout request for the same fresh method, started together."""
    user = payee(api, owner_conn, cents=10_000, method=False)
    method_id = _add(api, user, "racing.payee@example.com")["id"]
    outcome: dict[str, str] = {}
    barrier = threading.Barrier(2)

    def remove() -> None:
        barrier.wait()
        try:
            with get_db().transaction() as conn:
                service.remove_method(conn, user.id, method_id)
            outcome["remove"] = "removed"
        except Exception as exc:
            outcome["remove"] = getattr(exc, "code", repr(exc))

    def pay() -> None:
        barrier.wait()
        try:
            flows.request_payout(get_db(), user.id, PayoutCreateBody(amount_cents=1_000, password=PASSWORD, method_id=method_id))
            outcome["pay"] = "requested"
        except Exception as exc:
            outcome["pay"] = getattr(exc, "code", repr(exc))

    threads = [threading.Thread(target=remove), threading.Thread(target=pay)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert owner_conn.value(IN_FLIGHT_ON_REMOVED, u=user.id) == 0, "a payout in flight to a method whose details are gone"
    return outcome["remove"], outcome["pay"]


def test_removal_racing_a_payout_request_has_one_outcome(api: Api, owner_conn: Any) -> None:
    """Either the request wins (it is created and the removal is refused) or the removal does (the
    request finds no such method); never both. Without the shared lock both succeed (checked once by
    taking it out of request_payout)."""
    for _ in range(10):
        pair = _race_once(api, owner_conn)
        assert pair in {("removed", "payout_method_not_found"), ("payout_method_in_use", "requested")}, pair
