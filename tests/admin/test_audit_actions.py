"""Every staff action writes its audit entry (who, what, target, before, after, request id) in the same
transaction as the change; an action that fails leaves no entry. The list of changing routes comes from
the router, so a new one without a case here fails."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.test import Client

from functions.admin.routes import router
from shared.db import Query
from tests.admin.support import fund
from tests.fixtures.gcs import Gcs
from tests.helpers import PASSWORD, Api, User, error_code
from tests.kyc.support import upload_and_finalize

AUDIT_BY_REQUEST = Query(
    "t_audit_by_request",
    """SELECT actor_id::text AS actor_id, actor_role, action, target_type, target_id, subject_user_id::text AS subject_user_id,
              before, after, reason, request_id
         FROM audit_log WHERE request_id = :rid ORDER BY id""",
    prepared=False,
)
INSERT_WITHHELD = Query(
    "t_aa_insert_withheld",
    """INSERT INTO withheld_rewards (user_id, video_id, day, reward_micros, withheld_micros, cap_micros, reason)
       VALUES (CAST(:u AS uuid), CAST(:v AS uuid), current_date, 5000, 2000, 3000, 'daily_cap') RETURNING id""",
    prepared=False,
)


def _payout(api: Api, owner_conn: Any, admin: User) -> tuple[User, str]:
    user = api.signup()
    fund(api, owner_conn, admin, user, 40_000_000, "audit test funds")
    method = api.post("/payouts/methods", user=user, json={"type": "paypal", "email": "audited@example.org", "password": PASSWORD})
    assert method.status_code == 201, method.get_data(as_text=True)
    payout = api.post("/payouts/", user=user, json={"amount_cents": 1_200, "method_id": method.get_json()["id"], "password": PASSWORD})
    assert payout.status_code == 201, payout.get_data(as_text=True)
    return user, str(payout.get_json()["id"])


Case = Callable[[Api, Client, Any, dict[str, User]], tuple[str, Any, dict[str, Any], str, str]]


def _role(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    target = api.signup()
    return f"/admin/users/{target.id}/role", {"role": "support"}, {}, "user.role_change", target.id


def _mfa_reset(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    target = api.staff(owner_conn, "support")
    return f"/admin/users/{target.id}/mfa/reset", None, {}, "user.mfa_reset", target.id


def _adjust(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    target = api.signup()
    body = {"user_id": target.id, "amount_micros": 777, "reason": "audited credit"}
    return "/admin/adjustments", body, {"Idempotency-Key": uuid.uuid4().hex}, "ledger.adjustment", target.id


def _approve(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    _, payout_id = _payout(api, owner_conn, staff["admin"])
    return f"/admin/payouts/{payout_id}/approve", None, {}, "payout.approve", payout_id


def _reject(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    _, payout_id = _payout(api, owner_conn, staff["admin"])
    return f"/admin/payouts/{payout_id}/reject", {"reason": "destination looks wrong"}, {}, "payout.reject", payout_id


def _kyc(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    target = api.signup()
    upload_and_finalize(api, client, target)
    return f"/admin/kyc/{target.id}/decision", {"decision": "rejected", "reason": "blurry photo"}, {}, "kyc.decision", target.id


def _video(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    body = {"title": "Audited video", "duration_seconds": 30, "reward_micros": 10, "active": False}
    return "/admin/videos", body, {}, "video.create", ""


def _flag(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    key = f"audit-test-{uuid.uuid4().hex[:8]}"
    return f"/admin/flags/{key}", {"enabled": True, "rollout_percent": 25, "description": "audited"}, {}, "flag.set", key


def _reverse(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    from functions.ledger import service as ledger
    from shared.db import get_db

    target = api.signup()
    with get_db().transaction() as conn:  # a video reward: pending for its clearing period
        posted = ledger.post(conn, user_id=target.id, type="video_reward", amount=2_500, idempotency_key="audit-reverse", source="test")
    path = f"/admin/users/{target.id}/entries/{posted.entry_id}/reverse"
    return path, {"reason": "fraudulent views"}, {}, "ledger.reversal", str(posted.entry_id)


def _partner_create(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    pid = "au-" + uuid.uuid4().hex[:10]
    body = {
        "id": pid,
        "kind": "offerwall",
        "name": "Audited",
        "reward_micros_per_unit": 1,
        "revenue_micros_per_unit": 2,
        "max_units": 10,
        "daily_cap_micros": 100,
        "clearing_hours": 0,
    }
    return "/admin/partners", body, {}, "partner.create", pid


def _partner_update(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    from tests.partners.support import new_partner

    pid = new_partner(api, staff["admin"], "offerwall")
    return f"/admin/partners/{pid}", {"enabled": False}, {}, "partner.update", pid


def _partner_secret(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    from tests.partners.support import new_partner

    pid = new_partner(api, staff["admin"], "offerwall")
    return f"/admin/partners/{pid}/secrets", {"secret_hex": "ab" * 32, "overlap_hours": 1}, {}, "partner.secret_rotate", pid


def _partner_reversal(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    from tests.partners.support import new_partner, offerwall_query, set_secret

    pid = new_partner(api, staff["admin"], "offerwall")
    set_secret(api, staff["admin"], pid, b"k" * 32)
    user = api.signup()
    credited = api.get(f"/partner_callbacks/offerwall/{pid}?" + offerwall_query(b"k" * 32, user_id=user.id, transaction_id="t1", amount=3))
    assert credited.status_code == 200, credited.get_data(as_text=True)
    return f"/admin/partners/{pid}/reversals", {"transaction_id": "t1", "reason": "chargeback"}, {}, "partner.reversal", pid


def _video_edit(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    body = {"title": "Audited video to edit", "duration_seconds": 30, "reward_micros": 10}
    video_id = api.post("/admin/videos", user=staff["admin"], json=body).get_json()["id"]
    return f"/admin/videos/{video_id}", {"active": False}, {}, "video.deactivate", video_id


def _grant(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    target = api.signup()
    body = {"title": "Audited capped video", "duration_seconds": 30, "reward_micros": 5_000}
    video_id = api.post("/admin/videos", user=staff["admin"], json=body).get_json()["id"]
    row = owner_conn.one(INSERT_WITHHELD, u=target.id, v=video_id)
    path = f"/admin/users/{target.id}/withheld/{row['id']}/grant"
    return path, {"reason": "cap raised after review"}, {}, "reward.withheld_grant", str(row["id"])


def _risk_decision(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    target = api.signup()
    return f"/admin/risk/users/{target.id}/decision", {"decision": "review", "reason": "looks scripted"}, {}, "risk.review", target.id


def _risk_rule(api: Api, client: Client, owner_conn: Any, staff: dict[str, User]) -> tuple[str, Any, dict[str, Any], str, str]:
    # a one-minute longer window: a real, audited change that no other test notices
    body = {"threshold": 5, "window_minutes": 43_201, "weight": 20}
    return "/admin/risk/rules/referral_same_prefix", body, {}, "risk.rule.update", "referral_same_prefix"


# every changing route of the admin function -> how to perform it (PATCH for the one PATCH route)
CASES: dict[str, Case] = {
    "/users/{user_id}/role": _role,
    "/users/{user_id}/mfa/reset": _mfa_reset,
    "/adjustments": _adjust,
    "/payouts/{payout_id}/approve": _approve,
    "/payouts/{payout_id}/reject": _reject,
    "/kyc/{user_id}/decision": _kyc,
    "/videos": _video,
    "/flags/{key}": _flag,
    "/videos/{video_id}": _video_edit,
    "/users/{user_id}/withheld/{withheld_id}/grant": _grant,
    "/users/{user_id}/entries/{entry_id}/reverse": _reverse,
    "/partners": _partner_create,
    "/partners/{partner_id}": _partner_update,
    "/partners/{partner_id}/secrets": _partner_secret,
    "/partners/{partner_id}/reversals": _partner_reversal,
    "/risk/users/{user_id}/decision": _risk_decision,
    "/risk/rules/{name}": _risk_rule,
}
METHODS = {r.pattern: r.method for r in router.routes if r.method != "GET"}


def test_every_changing_admin_route_has_an_audit_case() -> None:
    posts = {r.pattern for r in router.routes if r.method != "GET"}
    assert posts == set(CASES), f"admin routes that change something without an audit test: {sorted(posts - set(CASES))}"


def test_every_staff_action_writes_its_audit_entry(api: Api, client: Client, owner_conn: Any, gcs: Gcs) -> None:
    staff = {"admin": api.staff(owner_conn, "admin")}
    for pattern, case in sorted(CASES.items()):
        path, body, headers, action, target_id = case(api, client, owner_conn, staff)
        rid = "audit-" + uuid.uuid4().hex
        resp = api.call(METHODS[pattern], path, user=staff["admin"], json=body, headers={**headers, "X-Request-Id": rid})
        assert resp.status_code in (200, 201), (pattern, resp.get_data(as_text=True))
        entries = owner_conn.all(AUDIT_BY_REQUEST, rid=rid)
        assert [e["action"] for e in entries] == [action], (pattern, entries)
        (entry,) = entries
        assert entry["actor_id"] == staff["admin"].id, pattern
        assert entry["actor_role"] == "admin", pattern
        assert entry["after"] is not None, pattern
        if target_id:
            assert entry["target_id"] == target_id, pattern
        if action in ("payout.approve", "payout.reject"):
            assert entry["before"]["status"] == "requested"
            assert entry["after"]["status"] == {"payout.approve": "approved", "payout.reject": "rejected"}[action]
            assert entry["subject_user_id"] == entry["before"]["user_id"]
        if action == "payout.reject":
            assert entry["reason"] == "destination looks wrong"
        if action == "kyc.decision":
            assert entry["before"] == {"kyc_status": "in_review"}
            assert entry["after"]["kyc_status"] == "rejected"
        if action == "flag.set":
            assert entry["before"] is None
            assert entry["after"]["rollout_percent"] == 25
        if action == "user.mfa_reset":
            assert entry["before"] == {"mfa": True}
            assert entry["after"]["mfa"] is False
        if action == "user.role_change":
            assert entry["before"] == {"role": "user"}
            assert entry["after"]["role"] == "support"
        if action == "risk.review":
            assert entry["before"] == {"risk_state": "ok"}
            assert entry["after"]["risk_state"] == "review"
            assert entry["reason"] == "looks scripted"
        if action == "risk.rule.update":
            assert entry["before"]["window_minutes"] == 43_200
            assert entry["after"]["window_minutes"] == 43_201


def test_a_refused_action_writes_no_audit_entry_and_staff_cannot_decide_their_own_payout(api: Api, owner_conn: Any, gcs: Gcs) -> None:
    admin = api.staff(owner_conn, "admin")
    finance = api.staff(owner_conn, "finance")
    _, payout_id = _payout(api, owner_conn, admin)
    rid = "audit-" + uuid.uuid4().hex
    ok = api.post(f"/admin/payouts/{payout_id}/approve", user=finance, headers={"X-Request-Id": rid})
    assert ok.status_code == 200, ok.get_data(as_text=True)
    rid2 = "audit-" + uuid.uuid4().hex
    twice = api.post(f"/admin/payouts/{payout_id}/reject", user=finance, json={"reason": "too late"}, headers={"X-Request-Id": rid2})
    assert twice.status_code == 409
    assert owner_conn.all(AUDIT_BY_REQUEST, rid=rid2) == []
    assert [e["action"] for e in owner_conn.all(AUDIT_BY_REQUEST, rid=rid)] == ["payout.approve"]
    # a finance member's own payout
    fund(api, owner_conn, admin, finance, 40_000_000, "staff funds")
    method = api.post("/payouts/methods", user=finance, json={"type": "paypal", "email": "staff@example.org", "password": PASSWORD})
    own = api.post("/payouts/", user=finance, json={"amount_cents": 1_200, "method_id": method.get_json()["id"], "password": PASSWORD})
    assert own.status_code == 201, own.get_data(as_text=True)
    refused = api.post(f"/admin/payouts/{own.get_json()['id']}/approve", user=finance)
    assert refused.status_code == 403 and error_code(refused) == "own_payout"
    missing = api.post(f"/admin/payouts/{uuid.uuid4()}/approve", user=finance)
    assert missing.status_code == 404
    assert api.post("/admin/payouts/not-a-uuid/reject", user=finance, json={"reason": "x"}).status_code == 404
    blank = api.post(f"/admin/payouts/{payout_id}/reject", user=finance, json={"reason": "   "})
    assert blank.status_code == 422
