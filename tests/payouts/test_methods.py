"""Payout methods: validation, re-authentication, encryption at rest, masking, the per-user cap, the default."""

from __future__ import annotations

import json
from typing import Any

import pytest

from functions.payouts import service
from functions.payouts.models import normalise_iban, valid_routing_number
from shared.config import get_settings
from shared.crypto import decrypt_json
from shared.db import Query
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


def test_bank_accounts_iban_and_us(api: Api) -> None:
    user = api.signup()
    first = add(api, user, iban())
    assert first.status_code == 201, first.get_data(as_text=True)
    assert first.get_json()["label"] == "IBAN DE •••• 3000"
    second = add(api, user, us_bank(make_default=True))
    assert second.status_code == 201, second.get_data(as_text=True)
    assert second.get_json()["label"] == "US checking •••• 6789"
    items = api.get(METHODS, user=user).get_json()["items"]
    assert [m["is_default"] for m in items] == [False, True]
    # switch the default back
    resp = api.post(f"{METHODS}/{items[0]['id']}/default", user=user)
    assert resp.status_code == 200 and resp.get_json()["is_default"] is True
    assert [m["is_default"] for m in api.get(METHODS, user=user).get_json()["items"]] == [True, False]


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


def test_validators() -> None:
    assert normalise_iban("gb82 west 1234 5698 7654 32") == "GB82WEST12345698765432"
    assert valid_routing_number("011000015") == "011000015"
    for bad in ("GB82WEST12345698765431", "XX82WEST12345698765432", "GB82"):
        with pytest.raises(ValueError):
            normalise_iban(bad)
    with pytest.raises(ValueError):
        valid_routing_number("000000000")
