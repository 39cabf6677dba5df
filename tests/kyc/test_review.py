"""Compliance's side, at the service level the admin function calls: queue, documents, decisions."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from pg8000.exceptions import DatabaseError

from functions.kyc import service
from shared.db import INSUFFICIENT_PRIVILEGE, Query, get_db, sqlstate
from shared.errors import Conflict, Forbidden, NotFound, ValidationFailed
from tests.fixtures.gcs import Gcs
from tests.helpers import Api, User
from tests.kyc.support import DOCUMENT, JPEG, KYC_STATUS, PNG, get_url, put_file, request_upload, upload_and_finalize

REVIEWS = Query(
    "t_kyc_reviews",
    "SELECT decision, reason, reviewer_id::text AS reviewer_id FROM kyc_reviews WHERE user_id = CAST(:id AS uuid) ORDER BY id",
    prepared=False,
)


def _staff(api: Api, owner_conn: Any, role: str = "compliance") -> User:
    return api.staff(owner_conn, role)


def _decide(user_id: str, decision: str, reason: str, reviewer_id: str) -> dict[str, Any]:
    with get_db().connection() as conn:
        return service.decide(conn, user_id, decision, reason, reviewer_id)


def _in_review(api: Api, client: Any) -> tuple[User, dict[str, Any]]:
    user = api.signup()
    upload, _ = upload_and_finalize(api, client, user)
    return user, upload


def test_documents_for_review_carry_a_working_short_lived_download_url(api: Api, client: Any, gcs: Gcs) -> None:
    user = api.signup()
    png, _ = upload_and_finalize(api, client, user)
    jpeg, _ = upload_and_finalize(api, client, user, data=JPEG, content_type="image/jpeg", kind="selfie")
    with get_db().connection() as conn:
        docs = service.documents_for_review(conn, user.id)
    assert [d["id"] for d in docs] == [jpeg["document_id"], png["document_id"]]
    for doc, data, ctype in ((docs[0], JPEG, "image/jpeg"), (docs[1], PNG, "image/png")):
        assert doc["status"] == "uploaded" and not doc["reviewed"] and doc["download_expires_at"] is not None
        query = {k: v[0] for k, v in parse_qs(urlparse(doc["download_url"]).query).items()}
        assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256" and query["X-Goog-Expires"] == "300"
        status, body, served_type = get_url(doc["download_url"])
        assert status == 200 and body == data and served_type == ctype
        assert "object_name" not in doc and "bucket" not in doc


def test_documents_for_review_lists_refused_files_without_a_url(api: Api, client: Any, gcs: Gcs) -> None:
    from tests.kyc.support import location, object_resource, post_finalize

    user = api.signup()
    upload = request_upload(api, user, size=len(PNG))
    assert put_file(upload, PNG[:10]) == 200
    assert post_finalize(client, object_resource(*location(upload))).status_code == 200
    with get_db().connection() as conn:
        [doc] = service.documents_for_review(conn, user.id)
        assert service.documents_for_review(conn, api.signup().id) == []
    assert doc["status"] == "rejected" and doc["download_url"] is None and doc["rejection_reason"].startswith("size_mismatch")


def test_review_queue_pages_through_users_in_review(api: Api, client: Any, gcs: Gcs) -> None:
    users = [_in_review(api, client)[0] for _ in range(3)]
    waiting = api.signup()
    request_upload(api, waiting)  # pending: not in the queue
    seen: list[dict[str, Any]] = []
    cursor = None
    with get_db().connection() as conn:
        while True:
            page = service.review_queue(conn, limit=2, cursor=cursor)
            seen += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        with pytest.raises(ValidationFailed):
            service.review_queue(conn, cursor="not-a-cursor")
    ids = [i["user_id"] for i in seen]
    assert len(ids) == len(set(ids))
    assert [u.id for u in users] == [i for i in ids if i in {u.id for u in users}]  # oldest first
    assert waiting.id not in ids
    mine = next(i for i in seen if i["user_id"] == users[0].id)
    assert mine["documents"] == 1 and mine["email"] == users[0].email and mine["in_review_since"] is not None


def test_verify_records_the_decision_and_returns_before_and_after(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    officer = _staff(api, owner_conn)
    user, upload = _in_review(api, client)
    result = _decide(user.id, "verified", "  Passport matches the selfie.  ", officer.id)
    assert result["before"] == {"kyc_status": "in_review"}
    after = result["after"]
    assert after["kyc_status"] == "verified"
    assert after["decision"] == "verified"
    assert after["reason"] == "Passport matches the selfie."
    assert after["reviewer_id"] == officer.id
    assert after["document_ids"] == [upload["document_id"]]
    assert after["decided_at"] is not None
    assert owner_conn.value(KYC_STATUS, id=user.id) == "verified"
    assert owner_conn.all(REVIEWS, id=user.id) == [
        {"decision": "verified", "reason": "Passport matches the selfie.", "reviewer_id": officer.id}
    ]
    assert owner_conn.one(DOCUMENT, id=upload["document_id"])["review_id"] == after["review_id"]

    # decided once: a second decision, and further uploads, are refused
    with pytest.raises(Conflict) as err:
        _decide(user.id, "rejected", "changed my mind", officer.id)
    assert err.value.code == "kyc_not_in_review"
    resp = api.post("/kyc/documents", user=user, json={"kind": "selfie", "content_type": "image/png", "size_bytes": 10})
    assert resp.status_code == 409

    # the user sees the outcome but never compliance's note
    status = api.get("/kyc/", user=user).get_json()
    assert status["kyc_status"] == "verified"
    assert status["last_decision"]["decision"] == "verified"
    assert "reason" not in status["last_decision"]
    assert "Passport matches" not in str(status)


def test_rejected_user_can_resubmit_and_is_reviewed_again(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    officer = _staff(api, owner_conn, "admin")
    user, first = _in_review(api, client)
    result = _decide(user.id, "rejected", "The photo is too blurry to read.", officer.id)
    assert result["after"]["kyc_status"] == "rejected"
    assert owner_conn.value(KYC_STATUS, id=user.id) == "rejected"
    upload = request_upload(api, user)
    assert owner_conn.value(KYC_STATUS, id=user.id) == "pending"
    assert put_file(upload, PNG) == 200
    from tests.kyc.support import location, object_resource, post_finalize

    assert post_finalize(client, object_resource(*location(upload))).status_code == 200
    assert owner_conn.value(KYC_STATUS, id=user.id) == "in_review"
    second = _decide(user.id, "verified", "Clear photo this time.", officer.id)
    assert second["after"]["document_ids"] == [upload["document_id"]]  # only what the first decision did not see
    assert [r["decision"] for r in owner_conn.all(REVIEWS, id=user.id)] == ["rejected", "verified"]
    assert first["document_id"] not in second["after"]["document_ids"]


@pytest.mark.parametrize("setup", ["none", "pending"])
def test_decide_refuses_users_not_in_review(api: Api, gcs: Gcs, owner_conn: Any, setup: str) -> None:
    officer = _staff(api, owner_conn)
    user = api.signup()
    if setup == "pending":
        request_upload(api, user)
    with pytest.raises(Conflict):
        _decide(user.id, "verified", "looks fine", officer.id)
    assert owner_conn.value(KYC_STATUS, id=user.id) == setup
    assert owner_conn.all(REVIEWS, id=user.id) == []


@pytest.mark.parametrize(
    "decision,reason,code",
    [
        ("approved", "ok", "invalid_decision"),
        ("VERIFIED", "ok", "invalid_decision"),
        ("verified", "", "reason_required"),
        ("verified", "   \n ", "reason_required"),
        ("verified", None, "reason_required"),
        ("verified", "x" * 501, "reason_too_long"),
        ("rejected", "bad\u0000byte", "invalid_characters"),
    ],
)
def test_decide_validates_decision_and_reason(
    api: Api, client: Any, gcs: Gcs, owner_conn: Any, decision: str, reason: Any, code: str
) -> None:
    officer = _staff(api, owner_conn)
    user, _ = _in_review(api, client)
    with pytest.raises(ValidationFailed) as err:
        _decide(user.id, decision, reason, officer.id)
    assert err.value.code == code
    assert owner_conn.value(KYC_STATUS, id=user.id) == "in_review"
    assert owner_conn.all(REVIEWS, id=user.id) == []


def test_reason_of_exactly_500_characters_is_accepted(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    officer = _staff(api, owner_conn)
    user, _ = _in_review(api, client)
    assert _decide(user.id, "rejected", "r" * 500, officer.id)["after"]["reason"] == "r" * 500


@pytest.mark.parametrize("role", ["user", "support", "finance"])
def test_only_compliance_or_admin_may_decide(api: Api, client: Any, gcs: Gcs, owner_conn: Any, role: str) -> None:
    reviewer = api.signup() if role == "user" else _staff(api, owner_conn, role)
    user, _ = _in_review(api, client)
    with pytest.raises(Forbidden):
        _decide(user.id, "verified", "trust me", reviewer.id)
    assert owner_conn.value(KYC_STATUS, id=user.id) == "in_review"


def test_nobody_decides_on_their_own_identity(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    officer = api.signup()
    upload_and_finalize(api, client, officer)
    from functions.auth.queries import SET_ROLE

    owner_conn.execute(SET_ROLE, id=officer.id, role="compliance")
    with pytest.raises(Forbidden):
        _decide(officer.id, "verified", "it is me", officer.id)
    assert owner_conn.value(KYC_STATUS, id=officer.id) == "in_review"


def test_unknown_users_and_reviewers(api: Api, owner_conn: Any) -> None:
    officer = _staff(api, owner_conn)
    with pytest.raises(NotFound):
        _decide("00000000-0000-4000-8000-000000000000", "verified", "ok", officer.id)
    with pytest.raises(NotFound):
        _decide("not-a-uuid", "verified", "ok", officer.id)
    with pytest.raises(Forbidden):
        _decide(api.signup().id, "verified", "ok", "not-a-uuid")
    with pytest.raises(NotFound), get_db().connection() as conn:
        service.documents_for_review(conn, "'; DROP TABLE users; --")


def test_decide_joins_the_callers_transaction(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    """The admin function writes its audit entry in the same transaction: a rollback undoes both."""
    officer = _staff(api, owner_conn)
    user, _ = _in_review(api, client)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), get_db().transaction() as conn:
        result = service.decide(conn, user.id, "verified", "fine", officer.id)
        assert result["after"]["kyc_status"] == "verified"
        raise Abort
    assert owner_conn.value(KYC_STATUS, id=user.id) == "in_review"
    assert owner_conn.all(REVIEWS, id=user.id) == []


def test_app_role_cannot_rewrite_decisions(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    officer = _staff(api, owner_conn)
    user, _ = _in_review(api, client)
    _decide(user.id, "rejected", "forged", officer.id)
    for sql in (
        "UPDATE kyc_reviews SET decision = 'verified' WHERE user_id = CAST(:id AS uuid)",
        "DELETE FROM kyc_reviews WHERE user_id = CAST(:id AS uuid)",
        "UPDATE kyc_documents SET object_name = 'kyc/' || repeat('a', 32) WHERE user_id = CAST(:id AS uuid)",
        "DELETE FROM kyc_documents WHERE user_id = CAST(:id AS uuid)",
    ):
        with pytest.raises(DatabaseError) as err, get_db().connection() as conn:
            conn.execute(Query("t_kyc_forbidden", sql, prepared=False), id=user.id)
        assert sqlstate(err.value) == INSUFFICIENT_PRIVILEGE, sql
    assert [r["decision"] for r in owner_conn.all(REVIEWS, id=user.id)] == ["rejected"]


def test_concurrent_decisions_record_exactly_one(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    import threading

    officers = [_staff(api, owner_conn) for _ in range(4)]
    user, _ = _in_review(api, client)
    outcomes: list[str] = []
    barrier = threading.Barrier(len(officers))

    def run(officer: User, decision: str) -> None:
        barrier.wait()
        try:
            _decide(user.id, decision, "racing", officer.id)
            outcomes.append(decision)
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=run, args=(o, "verified" if i % 2 else "rejected")) for i, o in enumerate(officers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    decided = [o for o in outcomes if o != "conflict"]
    assert len(decided) == 1 and outcomes.count("conflict") == 3
    assert owner_conn.value(KYC_STATUS, id=user.id) == decided[0]
    assert len(owner_conn.all(REVIEWS, id=user.id)) == 1
