"""The back office: user search and detail, roles, manual adjustments, and their audit entries."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from functions.admin import service
from functions.ledger import service as ledger
from shared.db import Query
from shared.errors import Conflict
from tests.admin.support import credit
from tests.helpers import Api, error_code, unique_email

AUDIT_FOR = Query(
    "t_admin_audit_for",
    """SELECT id, actor_id::text AS actor_id, actor_role, action, target_type, target_id, subject_user_id::text AS subject_user_id,
              before, after, reason, request_id
         FROM audit_log WHERE target_id = :target_id AND action = :action ORDER BY id""",
    prepared=False,
)
ENTRIES = Query("t_admin_entries", "SELECT count(*) FROM earnings WHERE user_id = CAST(:u AS uuid) AND type = 'adjustment'", prepared=False)


def rid() -> str:
    return "req-" + uuid.uuid4().hex


# --- search and detail -----------------------------------------------------------------------------
def test_search_by_exact_email_prefix_and_referral_code(api: Api, owner_conn: Any) -> None:
    support = api.staff(owner_conn, "support")
    tag = uuid.uuid4().hex[:10]
    users = [api.signup(email=f"srch{tag}-{i}@example.com") for i in range(3)]

    exact = api.get(f"/admin/users?email={users[1].email.upper()}", user=support)
    assert exact.status_code == 200, exact.get_data(as_text=True)
    assert [u["id"] for u in exact.get_json()["items"]] == [users[1].id]

    by_code = api.get(f"/admin/users?referral_code={users[2].referral_code.lower()}", user=support)
    assert [u["id"] for u in by_code.get_json()["items"]] == [users[2].id]

    seen: list[str] = []
    cursor = None
    for _ in range(5):
        url = f"/admin/users?email_prefix=SRCH{tag}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url, user=support).get_json()
        seen += [u["email"] for u in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(u.email for u in users)

    assert api.get(f"/admin/users?email=nobody-{tag}@example.com", user=support).get_json()["items"] == []
    both = api.get(f"/admin/users?email={users[0].email}&referral_code={users[0].referral_code}", user=support)
    assert both.status_code == 422
    assert api.get("/admin/users?cursor=garbage", user=support).status_code == 422
    # the listing by role pages newest first
    page = api.get("/admin/users?role=user&limit=2", user=support).get_json()
    assert [u["id"] for u in page["items"]] == [users[2].id, users[1].id] and page["next_cursor"]
    page2 = api.get(f"/admin/users?role=user&limit=1&cursor={page['next_cursor']}", user=support).get_json()
    assert [u["id"] for u in page2["items"]] == [users[0].id]


def test_searches_are_audited_without_the_search_term(api: Api, owner_conn: Any) -> None:
    support = api.staff(owner_conn, "support")
    email = unique_email("audited-search")
    api.get(f"/admin/users?email={email}", user=support)
    rows = owner_conn.all(
        Query("t_search_audit", "SELECT before, after, target_id FROM audit_log WHERE actor_id = CAST(:a AS uuid)", prepared=False),
        a=support.id,
    )
    assert rows and rows[-1]["after"] == {"by": "email", "results": 0}
    assert email not in repr(rows)


def test_user_detail_shows_profile_balance_entries_and_payouts_and_is_audited(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    support = api.staff(owner_conn, "support")
    user = api.signup()
    assert credit(api, admin, user, 2_500_000).status_code == 201
    assert credit(api, admin, user, -500_000).status_code == 201
    request_id = rid()
    resp = api.get(f"/admin/users/{user.id}", user=support, headers={"X-Request-Id": request_id})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["user"]["id"] == user.id
    assert body["user"]["email"] == user.email
    assert "password_hash" not in body["user"]
    assert body["balance"]["available"]["micros"] == sum(e["amount"]["micros"] for e in body["recent_entries"])
    assert [e["amount"]["micros"] for e in body["recent_entries"] if e["type"] == "adjustment"] == [-500_000, 2_500_000]
    assert body["balance"]["available"] == {
        "micros": 2_000_000 + body["balance"]["available"]["micros"] - 2_000_000,
        "formatted": body["balance"]["available"]["formatted"],
        "currency": "USD",
    }
    assert body["payouts"]["in_flight"] == 0
    views = owner_conn.all(AUDIT_FOR, target_id=user.id, action="user.view")
    assert [(v["actor_id"], v["actor_role"], v["request_id"]) for v in views] == [(support.id, "support", request_id)]

    ledger_page = api.get(f"/admin/users/{user.id}/ledger?limit=1", user=support).get_json()
    assert len(ledger_page["items"]) == 1
    assert ledger_page["next_cursor"]

    assert api.get(f"/admin/users/{uuid.uuid4()}", user=support).status_code == 404
    assert api.get("/admin/users/not-a-uuid", user=support).status_code == 404
    assert api.get(f"/admin/users/{uuid.uuid4()}/ledger", user=support).status_code == 404


# --- roles -----------------------------------------------------------------------------------------
def test_role_change_revokes_sessions_and_is_audited(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    user = api.signup()
    request_id = rid()
    resp = api.post(f"/admin/users/{user.id}/role", user=admin, json={"role": "finance"}, headers={"X-Request-Id": request_id})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json() == {"user_id": user.id, "role": "finance", "changed": True, "sessions_revoked": 1}
    # the old session is gone; a new login gets a staff session with the staff timeouts
    assert api.get("/auth/me", user=user).status_code == 401
    login = api.login(user.email, ip=user.ip)
    assert login.get_json()["user"]["role"] == "finance"
    (entry,) = owner_conn.all(AUDIT_FOR, target_id=user.id, action="user.role_change")
    assert entry["actor_id"] == admin.id and entry["actor_role"] == "admin" and entry["request_id"] == request_id
    assert entry["before"] == {"role": "user"} and entry["after"] == {"role": "finance", "sessions_revoked": 1}
    assert entry["subject_user_id"] == user.id and entry["target_type"] == "user"
    # setting the same role again changes nothing and records nothing
    again = api.post(f"/admin/users/{user.id}/role", user=admin, json={"role": "finance"})
    assert again.get_json()["changed"] is False
    assert len(owner_conn.all(AUDIT_FOR, target_id=user.id, action="user.role_change")) == 1
    bad = api.post(f"/admin/users/{user.id}/role", user=admin, json={"role": "root"})
    assert bad.status_code == 422
    assert api.post(f"/admin/users/{uuid.uuid4()}/role", user=admin, json={"role": "user"}).status_code == 404


def test_an_admin_may_demote_another_admin_but_never_the_last_one(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    other = api.staff(owner_conn, "admin")
    resp = api.post(f"/admin/users/{other.id}/role", user=admin, json={"role": "support"})
    assert resp.status_code == 200 and resp.get_json()["changed"] is True
    # With every other admin suspended (inside a transaction that is rolled back), demoting oneself
    # would leave no admin: refused.
    actor = service.Actor(user_id=admin.id, role="admin", request_id=rid())
    with pytest.raises(Conflict) as err, owner_conn.transaction():
        owner_conn.execute(
            Query("t_suspend_admins", "UPDATE users SET status = 'suspended' WHERE role = 'admin' AND id <> CAST(:me AS uuid)"),
            me=admin.id,
        )
        service.set_role(owner_conn, actor, admin.id, "support")
    assert err.value.code == "last_admin"
    role = owner_conn.value(Query("t_role", "SELECT role FROM users WHERE id = CAST(:id AS uuid)", prepared=False), id=admin.id)
    assert role == "admin"


# --- adjustments -----------------------------------------------------------------------------------
def test_adjustment_credits_once_per_idempotency_key_and_is_audited(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    user = api.signup()
    key = uuid.uuid4().hex
    request_id = rid()
    body = {"user_id": user.id, "amount_micros": 1_234_567, "reason": "  compensation for   ticket 42 "}
    first = api.post("/admin/adjustments", user=admin, json=body, headers={"Idempotency-Key": key, "X-Request-Id": request_id})
    assert first.status_code == 201, first.get_data(as_text=True)
    data = first.get_json()
    assert data["amount"] == {"micros": 1_234_567, "formatted": "$1.234567", "currency": "USD"}
    assert data["reason"] == "compensation for ticket 42"
    assert data["duplicate"] is False

    again = api.post("/admin/adjustments", user=admin, json=body, headers={"Idempotency-Key": key})
    assert again.status_code == 201
    assert again.get_json() == data
    assert again.headers.get("Idempotent-Replayed") == "true"
    assert owner_conn.value(ENTRIES, u=user.id) == 1

    # the same key with another body is refused
    other = api.post("/admin/adjustments", user=admin, json={**body, "amount_micros": 5}, headers={"Idempotency-Key": key})
    assert other.status_code == 422
    assert error_code(other) == "idempotency_key_reused"

    # even if the HTTP idempotency record is lost (a crash after commit), the ledger key holds
    owner_conn.execute(
        Query("t_drop_idem", "DELETE FROM idempotency_keys WHERE user_id = CAST(:u AS uuid) AND key = :k", prepared=False),
        u=admin.id,
        k=key,
    )
    replay = api.post("/admin/adjustments", user=admin, json=body, headers={"Idempotency-Key": key})
    assert replay.status_code == 200
    assert replay.get_json()["duplicate"] is True
    assert replay.get_json()["entry_id"] == data["entry_id"]
    assert owner_conn.value(ENTRIES, u=user.id) == 1

    (entry,) = owner_conn.all(AUDIT_FOR, target_id=user.id, action="ledger.adjustment")
    assert entry["actor_id"] == admin.id
    assert entry["request_id"] == request_id
    assert entry["reason"] == "compensation for ticket 42"
    assert entry["after"]["available_micros"] - entry["before"]["available_micros"] == 1_234_567
    assert entry["after"]["entry_id"] == data["entry_id"]
    assert ledger.verify(owner_conn, user_id=user.id)["ok"]


def test_adjustment_needs_a_key_a_reason_a_non_zero_amount_and_funds(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    user = api.signup()
    no_key = api.post("/admin/adjustments", user=admin, json={"user_id": user.id, "amount_micros": 5, "reason": "x"})
    assert no_key.status_code == 400
    assert error_code(no_key) == "idempotency_key_required"
    for bad in (
        {"user_id": user.id, "amount_micros": 0, "reason": "zero"},
        {"user_id": user.id, "amount_micros": True, "reason": "bool"},
        {"user_id": user.id, "amount_micros": 1.5, "reason": "float"},
        {"user_id": user.id, "amount_micros": "100", "reason": "string"},
        {"user_id": user.id, "amount_micros": 10**18, "reason": "too big"},
        {"user_id": user.id, "amount_micros": 5, "reason": "   "},
        {"user_id": user.id, "amount_micros": 5, "reason": "x" * 501},
        {"user_id": user.id, "amount_micros": 5},
        {"user_id": "nope", "amount_micros": 5, "reason": "bad id"},
        {"user_id": user.id, "amount_micros": 5, "reason": "extra", "type": "video_reward"},
    ):
        resp = api.post("/admin/adjustments", user=admin, json=bad, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert resp.status_code == 422, (bad, resp.get_data(as_text=True))
    assert credit(api, admin, user, 1_000).status_code == 201
    debit = credit(api, admin, user, -1_001, reason="clawback")
    assert debit.status_code == 409
    assert error_code(debit) == "insufficient_funds"
    ok = credit(api, admin, user, -1_000, reason="clawback")
    assert ok.status_code == 201
    assert ok.get_json()["balance_after"]["micros"] == owner_conn.value(
        Query("t_avail", "SELECT available FROM balances WHERE user_id = CAST(:u AS uuid)", prepared=False), u=user.id
    )
    unknown = api.post(
        "/admin/adjustments",
        user=admin,
        json={"user_id": str(uuid.uuid4()), "amount_micros": 5, "reason": "ghost"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert unknown.status_code == 404
    own = api.post(
        "/admin/adjustments",
        user=admin,
        json={"user_id": admin.id, "amount_micros": 5, "reason": "me"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert own.status_code == 403
    assert error_code(own) == "own_adjustment"
    # nothing refused left an audit entry behind
    assert len(owner_conn.all(AUDIT_FOR, target_id=user.id, action="ledger.adjustment")) == 2
    assert ledger.verify(owner_conn, user_id=user.id)["ok"]


# --- videos ----------------------------------------------------------------------------------------
def test_admin_creates_a_video_and_it_is_audited(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    request_id = rid()
    slug = "adm-" + uuid.uuid4().hex[:12]
    body = {"title": "Admin video", "duration_seconds": 120, "reward_micros": 5_000, "slug": slug, "active": False}
    resp = api.post("/admin/videos", user=admin, json=body, headers={"X-Request-Id": request_id})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    video = resp.get_json()
    (entry,) = owner_conn.all(AUDIT_FOR, target_id=str(video["id"]), action="video.create")
    assert entry["actor_id"] == admin.id and entry["request_id"] == request_id and entry["after"]["title"] == "Admin video"
    dup = api.post("/admin/videos", user=admin, json=body)
    assert dup.status_code == 409
    assert api.post("/admin/videos", user=admin, json={**body, "duration_seconds": 0}).status_code == 422


# --- the audit log ---------------------------------------------------------------------------------
def test_audit_log_reads_filter_and_page(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    compliance = api.staff(owner_conn, "compliance")
    user = api.signup()
    for amount in (1, 2, 3):
        assert credit(api, admin, user, amount).status_code == 201
    url = f"/admin/audit?subject_user_id={user.id}&action=ledger.adjustment&limit=2"
    page = api.get(url, user=compliance).get_json()
    assert [e["after"]["amount_micros"] for e in page["items"]] == [3, 2]
    rest = api.get(url + f"&cursor={page['next_cursor']}", user=compliance).get_json()
    assert [e["after"]["amount_micros"] for e in rest["items"]] == [1] and rest["next_cursor"] is None
    by_actor = api.get(f"/admin/audit?actor_id={admin.id}&target_type=user&target_id={user.id}", user=admin).get_json()
    assert len(by_actor["items"]) == 3 and all(e["actor_id"] == admin.id for e in by_actor["items"])
    assert api.get("/admin/audit?target_id=x", user=admin).status_code == 422
    assert api.get("/admin/audit?actor_id=nope", user=admin).status_code == 422


def test_audit_log_is_append_only_for_everyone(api: Api, owner_conn: Any) -> None:
    from pg8000.exceptions import DatabaseError

    admin = api.staff(owner_conn, "admin")
    user = api.signup()
    assert credit(api, admin, user, 7).status_code == 201
    for sql in (
        "UPDATE audit_log SET reason = 'changed' WHERE subject_user_id = CAST(:u AS uuid)",
        "DELETE FROM audit_log WHERE subject_user_id = CAST(:u AS uuid)",
    ):
        with pytest.raises(DatabaseError) as err:
            owner_conn.execute(Query("t_audit_change", sql, prepared=False), u=user.id)
        assert "append-only" in str(err.value)
    with pytest.raises(DatabaseError):
        owner_conn.execute(Query("t_audit_truncate", "TRUNCATE audit_log", prepared=False))
    privileges = owner_conn.one(
        Query(
            "t_audit_privileges",
            """SELECT has_table_privilege('earnpay_app', 'audit_log', 'SELECT') AS sel,
                      has_table_privilege('earnpay_app', 'audit_log', 'INSERT') AS ins,
                      has_table_privilege('earnpay_app', 'audit_log', 'UPDATE') AS upd,
                      has_table_privilege('earnpay_app', 'audit_log', 'DELETE') AS del,
                      has_table_privilege('earnpay_app', 'audit_log', 'TRUNCATE') AS trunc""",
            prepared=False,
        )
    )
    assert privileges == {"sel": True, "ins": True, "upd": False, "del": False, "trunc": False}


def test_audit_redacts_personal_fields() -> None:
    from shared.audit import REDACTED, redact

    value = {"email": "a@b.c", "nested": [{"display_name": "Ann", "ip": "1.2.3.4", "status": "active"}], "amount": 5, "label": None}
    assert redact(value) == {
        "email": REDACTED,
        "nested": [{"display_name": REDACTED, "ip": REDACTED, "status": "active"}],
        "amount": 5,
        "label": None,
    }
