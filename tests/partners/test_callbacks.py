"""Partner callbacks end to end over HTTP: rewarded video (ECDSA, key endpoint) and offerwall (HMAC), each
valid, replayed, forged, refused for every kind of bad input, reversed before and after clearing, and
with key or secret rotation. The ledger is verified after each."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from shared.config import get_settings
from tests.fixtures.secret_manager import SecretManagerStandIn
from tests.helpers import Api, User, error_code
from tests.ledger.test_clearing import clear_all_due
from tests.partners.support import (
    admob_query,
    buckets,
    callback_log,
    key_server,
    new_partner,
    offerwall_query,
    set_secret,
    verify_ok,
)

LATER = dt.timedelta(hours=73)  # past the test partners' 72-hour clearing period


@pytest.fixture(params=["database", "secret_manager"])
def store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> SecretManagerStandIn | None:
    """Each offerwall test runs with the secrets encrypted in the database (local) and in Secret Manager (the
    stand-in, over HTTP with the official client): the stand-in when it is Secret Manager, else None."""
    from functions.partners import service

    service.clear_secret_cache()
    if request.param == "secret_manager":
        return request.getfixturevalue("secret_manager")
    monkeypatch.setenv("SECRET_STORE", "database")
    get_settings.cache_clear()
    return None


def rv(api: Api, pid: str, query: str, ip: str | None = None) -> Any:
    return api.call("GET", f"/partner_callbacks/rewarded-video/{pid}?{query}", headers={"X-Forwarded-For": ip} if ip else None)


def ow(api: Api, pid: str, query: str, ip: str | None = None) -> Any:
    return api.call("GET", f"/partner_callbacks/offerwall/{pid}?{query}", headers={"X-Forwarded-For": ip} if ip else None)


def later() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + LATER


# --- rewarded video --------------------------------------------------------------------------------------
def test_rewarded_video_valid_replayed_forged_and_unknown_key(api: Api, admin: User) -> None:
    with key_server() as keys:
        key = keys.add_key("1001")
        pid = new_partner(api, admin, "rewarded_video", key_url=keys.url)
        user = api.signup()
        txn = uuid.uuid4().hex
        query = admob_query(key, "1001", user_id=user.id, transaction_id=txn, amount=25)

        resp = rv(api, pid, query)
        assert resp.status_code == 200 and resp.get_data(as_text=True) == "1", resp.get_data(as_text=True)
        assert buckets(user.id)["pending"] == 25_000 and buckets(user.id)["available"] == 0
        # delivered again (AdMob retries until answered): answered the same, credited once
        again = rv(api, pid, query)
        assert again.status_code == 200 and again.get_data(as_text=True) == "1"
        assert again.headers["X-EarnPay-Callback-Outcome"] == "duplicate"
        assert buckets(user.id)["pending"] == 25_000

        # forged: the same key id, signed by a key the network never published
        forger = ec.generate_private_key(ec.SECP256R1())
        forged = admob_query(forger, "1001", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=25)
        resp = rv(api, pid, forged)
        assert resp.status_code == 400 and resp.get_data(as_text=True) == "0"
        # tampered: a valid callback with the amount changed after signing
        tampered = admob_query(key, "1001", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=25).replace(
            "reward_amount=25", "reward_amount=999"
        )
        assert rv(api, pid, tampered).status_code == 400
        # no signature at all, and an unknown key id
        assert rv(api, pid, query.split("&signature=")[0]).status_code == 400
        unknown = admob_query(key, "4242", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=25)
        assert rv(api, pid, unknown).status_code == 400
        assert buckets(user.id)["pending"] == 25_000
        reasons = [r[3] for r in callback_log(pid)]
        assert reasons == ["applied", "duplicate", "bad_signature", "bad_signature", "missing_signature", "unknown_key"]
        verify_ok(user.id)


def test_rewarded_video_bad_input_is_refused_recorded_and_never_credits(api: Api, admin: User) -> None:
    with key_server() as keys:
        key = keys.add_key("7")
        pid = new_partner(api, admin, "rewarded_video", key_url=keys.url, timestamp_window_seconds=600, max_units=100)
        user = api.signup()

        def send(**kw: Any) -> Any:
            args: dict[str, Any] = {"user_id": user.id, "transaction_id": uuid.uuid4().hex, "amount": 10, **kw}
            return rv(api, pid, admob_query(key, "7", **args))

        stale = send(timestamp_ms=int((time.time() - 3600) * 1000))
        future = send(timestamp_ms=int((time.time() + 3600) * 1000))
        too_much = send(amount=101)
        zero = send(amount=0)
        nobody = send(user_id=str(uuid.uuid4()))
        not_a_user = send(user_id="not-a-uuid")
        for resp in (stale, future, too_much, zero, nobody, not_a_user):
            assert resp.status_code == 400 and resp.get_data(as_text=True) == "0", resp.get_data(as_text=True)
        # a duplicate with different content: the same transaction for more coins
        txn = uuid.uuid4().hex
        assert send(transaction_id=txn).status_code == 200
        conflicting = send(transaction_id=txn, amount=11)
        assert conflicting.status_code == 409 and conflicting.get_data(as_text=True) == "0"
        # a disabled partner answers its error and credits nothing
        assert api.post(f"/admin/partners/{pid}", user=admin, json={"enabled": False}).status_code == 200
        assert send().status_code == 400
        # an unknown partner (or the wrong kind of route) is a JSON 404: there is no partner protocol to speak
        missing = rv(api, "no-such-partner", admob_query(key, "7", user_id=user.id, transaction_id="t1", amount=1))
        assert missing.status_code == 404 and error_code(missing) == "unknown_partner"
        assert buckets(user.id)["pending"] == 10_000
        reasons = [r[3] for r in callback_log(pid)]
        assert reasons == [
            "stale_timestamp",
            "stale_timestamp",
            "amount_out_of_range",
            "amount_out_of_range",
            "unknown_user",
            "unknown_user",
            "applied",
            "duplicate_mismatch",
            "partner_disabled",
        ]
        assert callback_log("no-such-partner")[-1][2:] == ("refused", "unknown_partner")
        verify_ok(user.id)


def test_rewarded_video_key_rotation_refreshes_on_unknown_key_id_at_a_limited_rate(
    api: Api, admin: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    with key_server() as keys:
        old = keys.add_key("1")
        pid = new_partner(api, admin, "rewarded_video", key_url=keys.url)
        user = api.signup()
        assert rv(api, pid, admob_query(old, "1", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1)).status_code == 200
        assert keys.fetches == 1
        assert rv(api, pid, admob_query(old, "1", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1)).status_code == 200
        assert keys.fetches == 1, "a known key is served from the cache"

        # the network rotates: a new key id appears. Just after a fetch, an unknown id does not fetch again...
        new = keys.add_key("2")
        refused = rv(api, pid, admob_query(new, "2", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1))
        assert refused.status_code == 400 and refused.headers["X-EarnPay-Callback-Reason"] == "unknown_key"
        assert keys.fetches == 1
        # ...once the refresh interval has passed, it refreshes the keys and the new key verifies
        monkeypatch.setenv("PARTNER_KEYS_REFRESH_MIN_SECONDS", "0")
        get_settings.cache_clear()
        assert rv(api, pid, admob_query(new, "2", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1)).status_code == 200
        assert keys.fetches == 2
        # the old key keeps verifying while the network publishes it (and is cached)...
        assert rv(api, pid, admob_query(old, "1", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1)).status_code == 200
        assert keys.fetches == 2
        # ...but keys are trusted no longer than the maximum age: fetched again, the retired key fails
        del keys.keys["1"]
        monkeypatch.setenv("PARTNER_KEYS_MAX_AGE_SECONDS", "1")
        get_settings.cache_clear()
        time.sleep(1.1)
        gone = rv(api, pid, admob_query(old, "1", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1))
        assert gone.status_code == 400 and gone.headers["X-EarnPay-Callback-Reason"] == "unknown_key"
        assert keys.fetches == 3
        assert buckets(user.id)["pending"] == 4_000
        verify_ok(user.id)


def test_unknown_key_ids_cannot_force_endless_fetches(api: Api, admin: User, monkeypatch: pytest.MonkeyPatch) -> None:
    from functions.partners import keys as partner_keys

    clock = [1_000.0]
    monkeypatch.setattr(partner_keys.time, "monotonic", lambda: clock[0])
    with key_server() as keys:
        key = keys.add_key("1")
        pid = new_partner(api, admin, "rewarded_video", key_url=keys.url)
        user = api.signup()
        assert rv(api, pid, admob_query(key, "1", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1)).status_code == 200
        clock[0] += 61  # past PARTNER_KEYS_REFRESH_MIN_SECONDS (60): the first unknown key id refreshes once
        for key_id in ("900", "901", "902", "903"):
            assert rv(api, pid, admob_query(key, key_id, user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1)).status_code == 400
        assert keys.fetches == 2, keys.fetches
        clock[0] += 61
        assert rv(api, pid, admob_query(key, "904", user_id=user.id, transaction_id=uuid.uuid4().hex, amount=1)).status_code == 400
        assert keys.fetches == 3, keys.fetches


def test_rewarded_video_reversed_before_and_after_clearing_by_staff(api: Api, admin: User, owner_conn: Any) -> None:
    finance = api.staff(owner_conn, "finance")
    with key_server() as keys:
        key = keys.add_key("5")
        pid = new_partner(api, admin, "rewarded_video", key_url=keys.url)
        user = api.signup()
        pending_txn, cleared_txn = uuid.uuid4().hex, uuid.uuid4().hex
        assert rv(api, pid, admob_query(key, "5", user_id=user.id, transaction_id=cleared_txn, amount=300)).status_code == 200
        clear_all_due(now=later())
        assert buckets(user.id)["available"] == 300_000
        assert rv(api, pid, admob_query(key, "5", user_id=user.id, transaction_id=pending_txn, amount=100)).status_code == 200

        before = api.post(f"/admin/partners/{pid}/reversals", user=finance, json={"transaction_id": pending_txn, "reason": "chargeback"})
        assert before.status_code == 200 and before.get_json()["reversal_kind"] == "clawback", before.get_data(as_text=True)
        after = api.post(f"/admin/partners/{pid}/reversals", user=finance, json={"transaction_id": cleared_txn, "reason": "chargeback"})
        assert after.status_code == 200 and after.get_json()["reversal_kind"] == "recovery"
        again = api.post(f"/admin/partners/{pid}/reversals", user=finance, json={"transaction_id": cleared_txn, "reason": "again"})
        assert again.get_json()["duplicate"] is True
        assert buckets(user.id) | {"lifetime_earned": 0} == {
            "available": 300_000,  # never taken silently
            "pending": 0,
            "held": 0,
            "recovery": 300_000,
            "lifetime_earned": 0,
        }
        unknown = api.post(f"/admin/partners/{pid}/reversals", user=finance, json={"transaction_id": "nope", "reason": "x"})
        assert unknown.status_code == 404
        verify_ok(user.id)


# --- offerwall -------------------------------------------------------------------------------------------
SECRET = bytes.fromhex("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff")


def test_offerwall_credit_replay_forgery_and_json_answers(api: Api, admin: User, store: SecretManagerStandIn | None) -> None:
    pid = new_partner(
        api, admin, "offerwall", answer_ok='{"status":"ok"}', answer_error='{"status":"error"}', answer_content_type="application/json"
    )
    set_secret(api, admin, pid, SECRET)
    user = api.signup()
    txn = "offer-" + uuid.uuid4().hex
    query = offerwall_query(SECRET, user_id=user.id, transaction_id=txn, amount=40, offer="survey 12")
    resp = ow(api, pid, query)
    assert resp.status_code == 200 and resp.get_json() == {"status": "ok"}, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    assert ow(api, pid, query).get_json() == {"status": "ok"}
    assert buckets(user.id)["pending"] == 40_000
    forged = offerwall_query(b"not the secret", user_id=user.id, transaction_id="offer-x", amount=40)
    refused = ow(api, pid, forged)
    assert refused.status_code == 400 and refused.get_json() == {"status": "error"}
    tampered = query.replace("amount=40", "amount=400")
    assert ow(api, pid, tampered).status_code == 400
    stale = offerwall_query(SECRET, user_id=user.id, transaction_id="offer-old", amount=1, timestamp=int(time.time()) - 7200)
    assert ow(api, pid, stale).status_code == 400
    assert buckets(user.id)["pending"] == 40_000
    assert [r[3] for r in callback_log(pid)] == ["applied", "duplicate", "bad_signature", "bad_signature", "stale_timestamp"]
    verify_ok(user.id)


def test_offerwall_secret_rotation_with_an_overlap_window(
    api: Api, admin: User, owner_conn: Any, store: SecretManagerStandIn | None
) -> None:
    pid = new_partner(api, admin, "offerwall")
    user = api.signup()
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="a1", amount=1)).status_code == 400  # no secret yet
    set_secret(api, admin, pid, SECRET)
    new_secret = bytes(range(32))
    rotated = set_secret(api, admin, pid, new_secret, overlap_hours=1)
    assert [s["version"] for s in rotated["secrets"]] == [2, 1] and rotated["secrets"][1]["retires_at"] is not None
    assert "secret_hex" not in str(rotated) and SECRET.hex() not in str(rotated)
    # during the overlap both verify
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="a2", amount=1)).status_code == 200
    assert ow(api, pid, offerwall_query(new_secret, user_id=user.id, transaction_id="a3", amount=1)).status_code == 200
    # a rotation without overlap retires the previous ones now
    newest = bytes(range(1, 33))
    set_secret(api, admin, pid, newest, overlap_hours=0)
    assert ow(api, pid, offerwall_query(new_secret, user_id=user.id, transaction_id="a4", amount=1)).status_code == 400
    assert ow(api, pid, offerwall_query(newest, user_id=user.id, transaction_id="a5", amount=1)).status_code == 200
    stored = owner_conn.all(
        _q("SELECT store, envelope::text AS e, secret_version FROM partner_secrets WHERE partner_id = :p ORDER BY version"), p=pid
    )
    if store is None:  # the secret is stored encrypted
        assert [r["store"] for r in stored] == ["database"] * 3 and all(r["secret_version"] is None for r in stored)
        assert all(SECRET.hex() not in r["e"] and new_secret.hex() not in r["e"] for r in stored)
    else:  # the database holds only the Secret Manager version's name; the secret is there
        assert [r["store"] for r in stored] == ["secret_manager"] * 3 and all(r["e"] is None for r in stored)
        names = [r["secret_version"] for r in stored]
        assert names == [f"projects/{get_settings().gcp_project}/secrets/partner-offerwall-{pid}/versions/{n}" for n in (1, 2, 3)]
        assert [store.value(n) for n in names] == [SECRET, new_secret, newest]
    # the audit log has the rotation without the secret
    audit = owner_conn.all(_q("SELECT action, after::text AS after FROM audit_log WHERE target_id = :p ORDER BY id"), p=pid)
    assert [a["action"] for a in audit] == ["partner.create"] + ["partner.secret_rotate"] * 3
    assert all(newest.hex() not in (a["after"] or "") for a in audit)


def _q(sql: str) -> Any:
    from shared.db import Query

    return Query("t_partner_" + str(abs(hash(sql))), sql, prepared=False)


def test_offerwall_source_allow_list_cap_and_throttle(
    api: Api, admin: User, monkeypatch: pytest.MonkeyPatch, store: SecretManagerStandIn | None
) -> None:
    # a network of its own (throttling counts refusals per address for a minute, across tests)
    net = f"100.{64 + secrets.randbelow(64)}.{secrets.randbelow(256)}"
    pid = new_partner(api, admin, "offerwall", allowed_sources=[f"{net}.0/24"], daily_cap_micros=5_000)
    set_secret(api, admin, pid, SECRET)
    user = api.signup()
    ok_ip = f"{net}.9"
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="c1", amount=3), ip=ok_ip).status_code == 200
    outside = ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="c2", amount=1), ip="198.51.100.7")
    assert outside.status_code == 403 and outside.get_data(as_text=True) == "0"
    # the daily cap: 3 coins credited, 3 more would pass $0.005
    capped = ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="c3", amount=3), ip=ok_ip)
    assert capped.status_code == 400 and capped.headers["X-EarnPay-Callback-Reason"] == "daily_cap_reached"
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="c4", amount=2), ip=ok_ip).status_code == 200
    assert buckets(user.id)["pending"] == 5_000

    # a flood of bad callbacks from one address is throttled before any signature work
    monkeypatch.setenv("PARTNER_BAD_CALLBACK_LIMIT", "3")
    get_settings.cache_clear()
    flood_ip = f"{net}.200"
    statuses = [
        ow(api, pid, offerwall_query(b"forged", user_id=user.id, transaction_id=f"f{i}", amount=1), ip=flood_ip).status_code
        for i in range(5)
    ]
    assert statuses == [400, 400, 400, 429, 429]
    # even a good callback from there waits for the window; other addresses are unaffected
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="c5", amount=0), ip=flood_ip).status_code == 429
    assert ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id="c6", amount=1), ip=ok_ip).status_code == 400  # the cap
    assert [r[3] for r in callback_log(pid)][-3:] == ["throttled", "throttled", "daily_cap_reached"]


def test_offerwall_reversal_before_and_after_clearing_then_clearing_pays_the_recovery_first(
    api: Api, admin: User, store: SecretManagerStandIn | None
) -> None:
    pid = new_partner(api, admin, "offerwall")
    set_secret(api, admin, pid, SECRET)
    user = api.signup()

    def post(txn: str, amount: int, status: str = "credit") -> Any:
        return ow(api, pid, offerwall_query(SECRET, user_id=user.id, transaction_id=txn, amount=amount, status=status))

    assert post("r1", 500).status_code == 200  # will clear, then be reversed: a recovery
    clear_all_due(now=later())
    assert post("r2", 200).status_code == 200  # reversed while pending: a clawback
    assert buckets(user.id)["available"] == 500_000 and buckets(user.id)["pending"] == 200_000

    assert post("r2", 200, "reversal").status_code == 200
    assert post("r2", 200, "reversal").headers["X-EarnPay-Callback-Outcome"] == "duplicate"
    assert buckets(user.id)["pending"] == 0
    assert post("r1", 500, "reversal").status_code == 200
    b = buckets(user.id)
    assert (b["available"], b["pending"], b["recovery"]) == (500_000, 0, 500_000), "cleared money is owed back, never taken silently"
    # a reversal of something never credited, or with other content, credits and takes nothing
    assert post("r9", 1, "reversal").status_code == 404
    assert post("r1", 499, "reversal").status_code == 409
    verify_ok(user.id)

    # later credits clear and pay the recovery off first; no bucket is ever negative
    assert post("r3", 300).status_code == 200
    assert post("r4", 400).status_code == 200
    clear_all_due(now=later())
    b = buckets(user.id)
    assert (b["available"], b["pending"], b["recovery"]) == (500_000 + 200_000, 0, 0), b
    verify_ok(user.id)


def test_concurrent_deliveries_apply_once(api: Api, admin: User, apps: Any) -> None:
    import threading

    from werkzeug.test import Client

    from tests.helpers import Api as _Api

    pid = new_partner(api, admin, "offerwall")
    set_secret(api, admin, pid, SECRET)
    user = api.signup()
    query = offerwall_query(SECRET, user_id=user.id, transaction_id="same", amount=7)
    statuses: list[int] = []

    def deliver() -> None:
        statuses.append(ow(_Api(Client(apps)), pid, query).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 6
    assert buckets(user.id)["pending"] == 7_000
    assert sorted(r[2] for r in callback_log(pid)) == ["applied"] + ["duplicate"] * 5


def test_partner_configuration_is_validated_audited_and_partial_updates_keep_the_rest(api: Api, admin: User, owner_conn: Any) -> None:
    pid = new_partner(api, admin, "offerwall", allowed_sources=["203.0.113.0/24"])
    changed = api.post(f"/admin/partners/{pid}", user=admin, json={"name": None, "reward_micros_per_unit": 5, "enabled": False})
    assert changed.status_code == 200, changed.get_data(as_text=True)
    body = changed.get_json()
    assert (body["name"], body["reward_micros_per_unit"], body["enabled"]) == ("Test offerwall", 5, False)
    assert body["allowed_sources"] == ["203.0.113.0/24"] and body["daily_cap"]["micros"] == 2_000_000
    bad = [
        api.post(f"/admin/partners/{pid}", user=admin, json={"key_url": "https://keys.example/k.json"}),  # not for an offerwall
        api.post(f"/admin/partners/{pid}", user=admin, json={"allowed_sources": ["not-an-address"]}),
        api.post(f"/admin/partners/{pid}", user=admin, json={"reward_micros_per_unit": 0}),
        api.post("/admin/partners/no-such-partner", user=admin, json={"enabled": True}),
        api.post(
            "/admin/partners",
            user=admin,
            json={
                "id": pid,
                "kind": "offerwall",
                "name": "again",
                "reward_micros_per_unit": 1,
                "revenue_micros_per_unit": 1,
                "max_units": 1,
                "daily_cap_micros": 1,
                "clearing_hours": 0,
            },
        ),
        api.post(
            "/admin/partners",
            user=admin,
            json={
                "id": "rv-nokey",
                "kind": "rewarded_video",
                "name": "no key",
                "reward_micros_per_unit": 1,
                "revenue_micros_per_unit": 1,
                "max_units": 1,
                "daily_cap_micros": 1,
                "clearing_hours": 0,
            },
        ),
    ]
    assert [r.status_code for r in bad] == [422, 422, 422, 404, 409, 422], [r.get_data(as_text=True) for r in bad]
    listed = api.get("/admin/partners", user=admin).get_json()["items"]
    assert any(p["id"] == pid and p["enabled"] is False for p in listed)
    actions = owner_conn.all(_q("SELECT action FROM audit_log WHERE target_type = 'partner' AND target_id = :p ORDER BY id"), p=pid)
    assert [a["action"] for a in actions] == ["partner.create", "partner.update"]
