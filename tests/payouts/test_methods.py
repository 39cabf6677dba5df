"""Payout methods: validation, re-authentication, encryption at rest, masking, the per-user cap, the default."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from pg8000.exceptions import DatabaseError

from functions.payouts import queries as q
from functions.payouts import service
from shared.config import get_settings
from shared.crypto import decrypt_json, encrypt_json
from shared.db import EP_BANK_ACCOUNTS_WITHDRAWN, Query, sqlstate
from tests.helpers import PASSWORD, Api, User, error_code

IBAN = "DE89370400440532013000"
ROUTING = "021000021"  # a valid ABA checksum
METHODS = "/payouts/methods"
RAW_METHODS = Query(
    "test_raw_methods", "SELECT * FROM payout_methods WHERE user_id = CAST(:user_id AS uuid) ORDER BY created_at", prepared=False
)


def paypal(email: str = "alice.payee@example.com", **extra: Any) -> dict[str, Any]:
    return {"type": "paypal", "email": email, "password": PASSWORD, **extra}


def iban(**extra: Any) -> dict[str, Any]:
    return {"type": "bank_account", "account_holder": "Alice Example", "iban": "de89 3704 0044 0532 0130 00", "password": PASSWORD, **extra}


def us_bank(**extra: Any) -> dict[str, Any]:
    return {
        "type": "bank_account",
        "account_holder": "Alice Example",
        "routing_number": ROUTING,
        "account_number": "000123456789",
        "account_type": "checking",
        "password": PASSWORD,
        **extra,
    }


def add(api: Api, user: User, body: dict[str, Any]) -> Any:
    return api.post(METHODS, user=user, json=body)


def test_add_paypal_encrypts_at_rest_and_lists_masked(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    resp = add(api, user, paypal())
    assert resp.status_code == 201, resp.get_data(as_text=True)
    created = resp.get_json()
    assert created["type"] == "paypal" and created["is_default"] is True
    assert created["label"] == "PayPal a***e@example.com"
    # at rest: an envelope, no plaintext anywhere in the row
    row = owner_conn.all(RAW_METHODS, user_id=user.id)[0]
    assert "alice.payee" not in json.dumps(row, default=str)
    assert set(row["details"]) >= {"wrapped_key", "nonce", "ciphertext"}
    assert decrypt_json(row["details"], aad=service.method_aad(user.id)) == {"email": "alice.payee@example.com"}
    # bound to its owner: another user's aad does not open it
    with pytest.raises(Exception):  # noqa: B017 - any decryption error
        decrypt_json(row["details"], aad=service.method_aad("00000000-0000-0000-0000-000000000000"))
    listed = api.get(METHODS, user=user).get_json()
    assert listed["items"] == [created] and listed["next_cursor"] is None
    assert "alice.payee" not in json.dumps(listed)


def test_new_bank_accounts_are_refused_with_a_reason(api: Api) -> None:
    user = api.signup()
    for body in (iban(), us_bank(make_default=True)):
        resp = add(api, user, body)
        assert resp.status_code == 422, resp.get_data(as_text=True)
        assert error_code(resp) == "validation_failed"
        assert "PayPal only" in resp.get_data(as_text=True)
    assert api.get(METHODS, user=user).get_json()["items"] == []


def _old_bank_account(owner_conn: Any, user_id: str) -> str:
    """A bank account as one added before migration 0090 (its trigger bypassed, as for a restored row)."""
    method_id = str(uuid.uuid4())
    envelope = encrypt_json({"account_holder": "Alice Example", "iban": IBAN, "country": "DE"}, aad=service.method_aad(user_id))
    owner_conn.execute(Query("t_replica", "SET session_replication_role = replica", prepared=False))
    try:
        owner_conn.execute(
            q.INSERT_METHOD,
            id=method_id,
            user_id=user_id,
            type="bank_account",
            label="IBAN DE •••• 3000",
            details=json.dumps(envelope),
            is_default=True,
            fingerprint=None,
        )
    finally:
        owner_conn.execute(Query("t_origin", "SET session_replication_role = origin", prepared=False))
    return method_id


def test_a_bank_account_added_before_stays_readable_and_is_never_paid(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    owner_conn.execute(Query("t_kyc", "UPDATE users SET kyc_status = 'verified' WHERE id = CAST(:id AS uuid)", prepared=False), id=user.id)
    method_id = _old_bank_account(owner_conn, user.id)
    (listed,) = api.get(METHODS, user=user).get_json()["items"]
    assert listed["id"] == method_id
    assert listed["type"] == "bank_account"
    assert listed["label"] == "IBAN DE •••• 3000"
    resp = api.post("/payouts/", user=user, json={"amount_cents": 1_000, "password": PASSWORD})
    assert resp.status_code == 409, resp.get_data(as_text=True)
    assert error_code(resp) == "payout_method_unsupported"
    assert api.call("DELETE", f"{METHODS}/{method_id}", user=user).status_code == 200  # and it can still be removed


def test_the_database_refuses_a_new_bank_account(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    envelope = encrypt_json({"iban": IBAN}, aad=service.method_aad(user.id))
    with pytest.raises(DatabaseError) as refused:
        owner_conn.execute(
            q.INSERT_METHOD,
            id=str(uuid.uuid4()),
            user_id=user.id,
            type="bank_account",
            label="IBAN",
            details=json.dumps(envelope),
            is_default=False,
            fingerprint=None,
        )
    assert sqlstate(refused.value) == EP_BANK_ACCOUNTS_WITHDRAWN


def test_reauthentication_is_required(api: Api, owner_conn: Any) -> None:
    user = api.signup()
    resp = add(api, user, {**paypal(), "password": "not the password"})
    assert resp.status_code == 401 and error_code(resp) == "reauthentication_failed"
    body = paypal()
    del body["password"]
    assert add(api, user, body).status_code == 422
    assert owner_conn.all(RAW_METHODS, user_id=user.id) == []


@pytest.mark.parametrize(
    "body",
    [
        {"type": "paypal", "email": "not-an-email", "password": PASSWORD},
        {"type": "paypal", "email": "a@example.com", "iban": IBAN, "password": PASSWORD},
        {"type": "bank_account", "account_holder": "A", "iban": "DE89370400440532013001", "password": PASSWORD},  # checksum
        {"type": "bank_account", "account_holder": "A", "iban": "DE8937040044053201300", "password": PASSWORD},  # length
        {"type": "bank_account", "account_holder": "   ", "iban": IBAN, "password": PASSWORD},
        {"type": "bank_account", "iban": IBAN, "password": PASSWORD},
        {"type": "bank_account", "account_holder": "A", "routing_number": "021000022", "account_number": "1234", "account_type": "checking",
         "password": PASSWORD},
        {"type": "bank_account", "account_holder": "A", "routing_number": ROUTING, "account_number": "12", "account_type": "checking",
         "password": PASSWORD},
        {"type": "bank_account", "account_holder": "A", "routing_number": ROUTING, "account_number": "123456", "password": PASSWORD},
        {"type": "crypto", "address": "x", "password": PASSWORD},
        {"type": "paypal", "email": "a@example.com", "password": PASSWORD, "make_default": "yes"},
        {"type": "paypal", "email": "a@example.com", "password": PASSWORD, "nickname": "extra"},
        {"type": "paypal", "email": 42, "password": PASSWORD},
    ],
)  # fmt: skip
def test_bad_methods_are_refused(api: Api, body: dict[str, Any]) -> None:
    user = api.signup()
    resp = add(api, user, body)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert api.get(METHODS, user=user).get_json()["items"] == []


def test_at_most_n_methods(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAYOUT_MAX_METHODS", "2")
    get_settings.cache_clear()  # read at call time (tests/conftest.py clears it again after the test)
    user = api.signup()
    assert add(api, user, paypal("one@example.com")).status_code == 201
    assert add(api, user, paypal("two@example.com")).status_code == 201
    resp = add(api, user, paypal("three@example.com"))
    assert resp.status_code == 409 and error_code(resp) == "too_many_payout_methods"
    assert len(api.get(METHODS, user=user).get_json()["items"]) == 2


def test_methods_are_private(api: Api) -> None:
    alice, mallory = api.signup(), api.signup()
    method = add(api, alice, paypal()).get_json()
    assert api.get(METHODS, user=mallory).get_json()["items"] == []
    resp = api.post(f"{METHODS}/{method['id']}/default", user=mallory)
    assert resp.status_code == 404 and error_code(resp) == "payout_method_not_found"
    assert api.post(f"{METHODS}/not-a-uuid/default", user=mallory).status_code == 404
    assert api.get(METHODS).status_code == 401
