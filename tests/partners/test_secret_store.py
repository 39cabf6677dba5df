"""Offerwall secrets in Secret Manager (the stand-in, over HTTP with the official client): what each instance
caches, that a rotation is seen at once, what an unreachable or refusing store does, and which
configurations are refused when deployed."""

from __future__ import annotations

from typing import Any

import pytest

from functions.partners import service
from shared import secrets
from shared.config import ConfigError, get_settings
from tests.fixtures.secret_manager import SecretManagerStandIn
from tests.helpers import Api, User, error_code
from tests.partners.support import buckets, callback_log, new_partner, offerwall_query, set_secret

SECRET = bytes(range(100, 132))


def ow(api: Api, pid: str, query: str) -> Any:
    return api.call("GET", f"/partner_callbacks/offerwall/{pid}?{query}")


def test_resolved_secrets_are_cached_and_a_rotation_is_seen_at_once(api: Api, admin: User, sm: SecretManagerStandIn) -> None:
    secret_manager = sm
    pid = new_partner(api, admin, "offerwall")
    set_secret(api, admin, pid, SECRET)
    assert secret_manager.calls["create_secret"] == 1, "the partner's secret is created with its first version"
    user = api.signup()
    for i in range(3):
        assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id=f"k{i}", amount=1)).status_code == 200
    assert secret_manager.calls["access_secret_version"] == 1, "one read of Secret Manager per instance, then the cache"
    # forged signatures never make us read the store again
    for i in range(3):
        assert ow(api, pid, offerwall_query(b"forged", user_id=user.id, transaction_id=f"f{i}", amount=1)).status_code == 400
    assert secret_manager.calls["access_secret_version"] == 1

    # a rotation (on any instance) is seen by the next callback: both versions are read once, and verify
    new = bytes(range(200, 232))
    set_secret(api, admin, pid, new, overlap_hours=1)
    # (the first add found no secret, created it and added again: 3 adds; the secret exists now)
    assert secret_manager.calls["create_secret"] == 1 and secret_manager.calls["add_secret_version"] == 3
    assert ow(api, pid, offerwall_query(new, user_id=user.id, transaction_id="k3", amount=1)).status_code == 200
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="k4", amount=1)).status_code == 200
    assert secret_manager.calls["access_secret_version"] == 3
    # a rotation without overlap retires the old secret at once, cache or not
    newest = bytes(range(50, 82))
    set_secret(api, admin, pid, newest, overlap_hours=0)
    assert ow(api, pid, offerwall_query(new, user_id=user.id, transaction_id="k5", amount=1)).status_code == 400
    assert ow(api, pid, offerwall_query(newest, user_id=user.id, transaction_id="k6", amount=1)).status_code == 200
    assert buckets(user.id)["pending"] == 6_000


def test_the_cache_is_kept_only_briefly(api: Api, admin: User, sm: SecretManagerStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    secret_manager = sm
    clock = [5_000.0]
    monkeypatch.setattr(service.time, "monotonic", lambda: clock[0])
    pid = new_partner(api, admin, "offerwall")
    set_secret(api, admin, pid, SECRET)
    user = api.signup()
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="t1", amount=1)).status_code == 200
    clock[0] += get_settings().partner_secret_cache_seconds - 1
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="t2", amount=1)).status_code == 200
    assert secret_manager.calls["access_secret_version"] == 1
    clock[0] += 2  # past PARTNER_SECRET_CACHE_SECONDS: read again (a disabled version would stop verifying now)
    secret_manager.disable(_versions(secret_manager, pid)[0])
    refused = ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="t3", amount=1))
    assert refused.status_code == 400 and refused.headers["X-EarnPay-Callback-Reason"] == "no_secret"
    assert secret_manager.calls["access_secret_version"] == 2


def _versions(standin: SecretManagerStandIn, pid: str) -> list[str]:
    secret = next(name for name in standin.secrets if name.endswith(f"/secrets/partner-offerwall-{pid}"))
    return [f"{secret}/versions/{n}" for n in range(1, len(standin.versions[secret]) + 1)]


def test_an_unreachable_secret_manager_is_a_retry_not_a_refusal(api: Api, admin: User, sm: SecretManagerStandIn) -> None:
    secret_manager = sm
    pid = new_partner(api, admin, "offerwall")
    # rotation while Secret Manager is down: our JSON 503, nothing stored
    secret_manager.fail_next(503)
    down = api.post(f"/admin/partners/{pid}/secrets", user=admin, json={"secret_hex": SECRET.hex()})
    assert down.status_code == 503 and error_code(down) == "secret_store_unavailable"
    assert api.get("/admin/partners", user=admin).get_json()["items"] != []
    listed = next(p for p in api.get("/admin/partners", user=admin).get_json()["items"] if p["id"] == pid)
    assert listed["secrets"] == []
    # refused by IAM (403) is the same answer: an operator must act, the partner retries meanwhile
    secret_manager.fail_next(403)
    assert api.post(f"/admin/partners/{pid}/secrets", user=admin, json={"secret_hex": SECRET.hex()}).status_code == 503

    rotated = set_secret(api, admin, pid, SECRET)
    assert rotated["secrets"][0]["store"] == "secret_manager"
    user = api.signup()
    secret_manager.fail_next(503)
    retry = ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="u1", amount=2))
    assert retry.status_code == 503 and retry.headers["X-EarnPay-Callback-Reason"] == "secret_store_unavailable"
    # the partner's retry succeeds once the store answers
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="u1", amount=2)).status_code == 200
    assert buckets(user.id)["pending"] == 2_000
    assert [r[3] for r in callback_log(pid)] == ["secret_store_unavailable", "applied"]


def test_versions_in_the_other_store_do_not_verify(api: Api, admin: User, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process reads only its configured store: switching stores means rotating every offerwall's secret."""
    service.clear_secret_cache()
    monkeypatch.setenv("SECRET_STORE", "database")
    get_settings.cache_clear()
    pid = new_partner(api, admin, "offerwall")
    set_secret(api, admin, pid, SECRET)
    user = api.signup()
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="s1", amount=1)).status_code == 200
    monkeypatch.setenv("SECRET_STORE", "secret_manager")
    monkeypatch.setenv("SECRET_MANAGER_ENDPOINT", "http://127.0.0.1:9")  # never called: there is no version there
    get_settings.cache_clear()
    service.clear_secret_cache()
    refused = ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="s2", amount=1))
    assert refused.status_code == 400 and refused.headers["X-EarnPay-Callback-Reason"] == "no_secret"
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SECRET_STORE": "database"}, "SECRET_STORE=database"),
        ({"SECRET_STORE": "secret_manager", "SECRET_MANAGER_ENDPOINT": "http://127.0.0.1:9"}, "SECRET_MANAGER_ENDPOINT"),
    ],
)
def test_deployed_functions_refuse_test_stores(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    monkeypatch.setenv("EARNPAY_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/db")
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    get_settings.cache_clear()
    secrets.reset()
    try:
        with pytest.raises(ConfigError, match=message):
            service.secret_store()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        secrets.reset()


def test_deployed_defaults_to_secret_manager_and_local_to_the_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EARNPAY_ENV", "production")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/db")
    monkeypatch.delenv("SECRET_STORE", raising=False)
    get_settings.cache_clear()
    secrets.reset()
    try:
        store = service.secret_store()
        assert isinstance(store, secrets.SecretManagerStore) and store.endpoint is None
        assert store.secret_path("ow-x") == f"projects/{get_settings().gcp_project}/secrets/partner-offerwall-ow-x"
        monkeypatch.setenv("EARNPAY_ENV", "test")
        get_settings.cache_clear()
        assert service.secret_store().kind == "database"
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        secrets.reset()
