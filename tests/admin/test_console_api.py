"""The admin routes the staff console added: a user's account page, the ledger's type filter, granting
a withheld reward (once), editing and deactivating videos, and idempotent payout decisions."""

from __future__ import annotations

import uuid
from typing import Any

from shared.db import Query
from tests.helpers import PASSWORD, Api, error_code

INSERT_WITHHELD = Query(
    "t_ca_insert_withheld",
    """INSERT INTO withheld_rewards (user_id, video_id, day, reward_micros, withheld_micros, cap_micros, reason)
       VALUES (CAST(:u AS uuid), CAST(:v AS uuid), current_date, 5000, 2000, 3000, 'daily_cap') RETURNING id""",
    prepared=False,
)
VERIFY_KYC = Query("t_ca_verify_kyc", "UPDATE users SET kyc_status = 'verified' WHERE id = CAST(:u AS uuid)", prepared=False)


def _credit(api: Api, admin: Any, user_id: str, micros: int) -> None:
    resp = api.post(
        "/admin/adjustments",
        user=admin,
        json={"user_id": user_id, "amount_micros": micros, "reason": "console test"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)


def test_the_account_page_shows_sessions_masked_methods_and_the_referral_tree(api: Api, owner_conn: Any) -> None:
    support = api.staff(owner_conn, "support")
    referrer = api.signup(name="Referrer")
    code = api.get("/auth/me", user=referrer).get_json()["referral_code"]
    child = api.signup(referral_code=code, name="Child")
    grandchild_code = api.get("/auth/me", user=child).get_json()["referral_code"]
    api.signup(referral_code=grandchild_code, name="Grandchild")
    body = {"type": "paypal", "email": "someone.secret@example.org", "password": PASSWORD}
    method = api.post("/payouts/methods", user=referrer, json=body)
    assert method.status_code == 201, method.get_data(as_text=True)

    resp = api.get(f"/admin/users/{referrer.id}/account", user=support)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["sessions"] and body["sessions"][0]["live"] is True and "token" not in str(body["sessions"])
    (pm,) = body["payout_methods"]
    assert pm["type"] == "paypal" and "someone.secret" not in pm["label"] and "*" in pm["label"]
    assert body["referrals"]["referred_by"] is None and body["referrals"]["referred_total"] == 1
    (referred,) = body["referrals"]["referred"]
    assert referred["id"] == child.id and referred["referred_count"] == 1
    child_view = api.get(f"/admin/users/{child.id}/account", user=support).get_json()
    assert child_view["referrals"]["referred_by"]["id"] == referrer.id
    audit = api.get(f"/admin/audit?subject_user_id={referrer.id}&action=user.account_view", user=api.staff(owner_conn, "admin"))
    assert [e["actor_id"] for e in audit.get_json()["items"]] == [support.id]
    assert api.get(f"/admin/users/{uuid.uuid4()}/account", user=support).status_code == 404


def test_the_ledger_filters_by_entry_type(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    user = api.signup()
    _credit(api, admin, user.id, 5_000)
    all_types = {e["type"] for e in api.get(f"/admin/users/{user.id}/ledger", user=admin).get_json()["items"]}
    only = api.get(f"/admin/users/{user.id}/ledger?type=adjustment", user=admin).get_json()["items"]
    assert only and {e["type"] for e in only} == {"adjustment"} and all_types >= {"adjustment"}
    assert api.get(f"/admin/users/{user.id}/ledger?type=nope", user=admin).get_json()["items"] == []
    assert api.get(f"/admin/users/{user.id}/ledger?type=<b>", user=admin).status_code == 422


def test_a_withheld_reward_is_granted_once(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    user = api.signup()
    video = api.post("/admin/videos", user=admin, json={"title": "Capped", "duration_seconds": 30, "reward_micros": 5_000}).get_json()
    withheld_id = owner_conn.one(INSERT_WITHHELD, u=user.id, v=video["id"])["id"]
    listed = api.get(f"/admin/users/{user.id}/account", user=admin).get_json()["withheld_rewards"]
    assert [(w["id"], w["status"], w["withheld"]["micros"]) for w in listed] == [(withheld_id, "withheld", 2000)]

    path = f"/admin/users/{user.id}/withheld/{withheld_id}/grant"
    first = api.post(path, user=admin, json={"reason": "cap raised"})
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.get_json()["amount"]["micros"] == 2000 and first.get_json()["balance_after"]["micros"] == 2000
    again = api.post(path, user=admin, json={"reason": "cap raised"})
    assert again.status_code == 409 and error_code(again) == "withheld_resolved"
    other = api.staff(owner_conn, "admin")
    assert api.post(path, user=other, json={"reason": "twice?"}).status_code == 409
    entries = api.get(f"/admin/users/{user.id}/ledger?type=adjustment", user=admin).get_json()["items"]
    assert [e["amount"]["micros"] for e in entries] == [2000]
    assert api.post(f"/admin/users/{user.id}/withheld/99999999/grant", user=admin, json={"reason": "x"}).status_code == 404
    assert api.post(f"/admin/users/{user.id}/withheld/abc/grant", user=admin, json={"reason": "x"}).status_code == 404
    assert api.post(f"/admin/users/{admin.id}/withheld/{withheld_id}/grant", user=admin, json={"reason": "x"}).status_code == 403


def test_videos_are_listed_edited_and_deactivated(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    video = api.post("/admin/videos", user=admin, json={"title": "Old title", "duration_seconds": 60, "reward_micros": 1_000}).get_json()
    edited = api.call("PATCH", f"/admin/videos/{video['id']}", user=admin, json={"title": "New title", "reward_micros": 2_000})
    assert edited.status_code == 200, edited.get_data(as_text=True)
    assert edited.get_json()["title"] == "New title" and edited.get_json()["reward"]["micros"] == 2_000 and edited.get_json()["active"]
    off = api.call("PATCH", f"/admin/videos/{video['id']}", user=admin, json={"active": False}).get_json()
    assert off["active"] is False and off["title"] == "New title"
    listed = {v["id"]: v for v in api.get("/admin/videos", user=admin).get_json()["items"]}
    assert listed[video["id"]]["active"] is False
    user = api.signup()
    assert api.get(f"/videos/{video['id']}", user=user).status_code == 404
    assert api.call("PATCH", f"/admin/videos/{uuid.uuid4()}", user=admin, json={"active": False}).status_code == 404
    assert api.call("PATCH", f"/admin/videos/{video['id']}", user=admin, json={"reward_micros": -1}).status_code == 422
    assert api.call("PATCH", f"/admin/videos/{video['id']}", user=admin, json={"title": ""}).status_code == 422


def test_a_payout_approval_retried_with_its_idempotency_key_is_replayed(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    finance = api.staff(owner_conn, "finance")
    user = api.signup()
    owner_conn.execute(VERIFY_KYC, u=user.id)
    _credit(api, admin, user.id, 20_000_000)
    method = api.post("/payouts/methods", user=user, json={"type": "paypal", "email": "pay@example.org", "password": PASSWORD}).get_json()
    payout = api.post("/payouts/", user=user, json={"amount_cents": 1_000, "method_id": method["id"], "password": PASSWORD}).get_json()
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = api.post(f"/admin/payouts/{payout['id']}/approve", user=finance, headers=key)
    again = api.post(f"/admin/payouts/{payout['id']}/approve", user=finance, headers=key)
    assert first.status_code == again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"
    assert first.get_json() == again.get_json()
    audit = api.get(f"/admin/audit?target_type=payout&target_id={payout['id']}&action=payout.approve", user=admin).get_json()
    assert len(audit["items"]) == 1


def test_cors_answers_only_the_console_origin(api: Api, owner_conn: Any, monkeypatch: Any) -> None:
    from shared.config import get_settings

    monkeypatch.setenv("CONSOLE_ORIGINS", "https://console.earnpay.example")
    get_settings.cache_clear()
    try:
        admin = api.staff(owner_conn, "admin")
        console = {"Origin": "https://console.earnpay.example"}
        pre = api.call(
            "OPTIONS",
            "/admin/users",
            headers={**console, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"},
        )
        assert pre.status_code == 204
        assert pre.headers["Access-Control-Allow-Origin"] == "https://console.earnpay.example"
        allowed = pre.headers["Access-Control-Allow-Headers"]
        assert "Authorization" in allowed and "Idempotency-Key" in allowed
        assert "GET" in pre.headers["Access-Control-Allow-Methods"]
        got = api.get("/admin/users", user=admin, headers=console)
        assert got.status_code == 200 and got.headers["Access-Control-Allow-Origin"] == "https://console.earnpay.example"
        assert "Idempotent-Replayed" in got.headers["Access-Control-Expose-Headers"] and "Origin" in got.headers["Vary"]
        login_pre = api.call("OPTIONS", "/auth/login", headers={**console, "Access-Control-Request-Method": "POST"})
        assert login_pre.headers["Access-Control-Allow-Origin"] == "https://console.earnpay.example"
        for origin in ("https://evil.example", "null", "https://console.earnpay.example.evil.example"):
            other = api.get("/admin/users", user=admin, headers={"Origin": origin})
            assert "Access-Control-Allow-Origin" not in other.headers, origin
        # the user-facing functions do not answer the console at all
        assert "Access-Control-Allow-Origin" not in api.call("OPTIONS", "/payouts/", headers=console).headers
    finally:
        monkeypatch.delenv("CONSOLE_ORIGINS")
        get_settings.cache_clear()


def test_a_bad_console_origins_setting_stops_start_up(monkeypatch: Any) -> None:
    import pytest

    from shared.config import ConfigError, get_settings

    monkeypatch.setenv("CONSOLE_ORIGINS", "*")
    get_settings.cache_clear()
    try:
        with pytest.raises((ConfigError, ValueError)):
            get_settings()
    finally:
        monkeypatch.delenv("CONSOLE_ORIGINS")
        get_settings.cache_clear()
