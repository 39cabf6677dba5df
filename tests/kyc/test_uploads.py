"""KYC uploads against the GCS emulator: signed URLs, the finalize CloudEvent, and hostile input."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from shared import storage
from shared.db import Query
from tests.fixtures.gcs import Gcs
from tests.helpers import Api, error_code
from tests.kyc.support import (
    DOCUMENT,
    JPEG,
    KYC_STATUS,
    PDF,
    PNG,
    USER_DOCUMENT_COUNT,
    location,
    object_resource,
    post_finalize,
    put_file,
    request_upload,
    upload_and_finalize,
)

DEAD_LETTERS = Query(
    "t_kyc_dead_letters", "SELECT count(*) FROM dead_letters WHERE source = 'kyc_document_uploaded' AND message_id = :id", prepared=False
)
BY_NAME = Query("t_kyc_by_name", "SELECT count(*) FROM kyc_documents WHERE object_name = :n", prepared=False)


def test_signed_upload_url_binds_type_and_size(api: Api, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    upload = request_upload(api, user, kind="national_id", content_type="image/jpeg", size=len(JPEG))
    assert upload["method"] == "PUT" and upload["kind"] == "national_id" and upload["max_bytes"] == len(JPEG)
    assert upload["headers"] == {"Content-Type": "image/jpeg", "x-goog-content-length-range": f"0,{len(JPEG)}"}
    query = {k: v[0] for k, v in parse_qs(urlparse(upload["upload_url"]).query).items()}
    assert query["X-Goog-Algorithm"] == "GOOG4-RSA-SHA256"
    assert query["X-Goog-Expires"] == "900"
    signed = query["X-Goog-SignedHeaders"].split(";")
    assert {"content-type", "host", "x-goog-content-length-range"} <= set(signed)
    assert re.fullmatch(r"[0-9a-f]{256,}", query["X-Goog-Signature"])
    bucket, name = location(upload)
    assert bucket == gcs.kyc_bucket
    # the object name says nothing about who or what
    assert re.fullmatch(r"kyc/[0-9a-f]{32}", name)
    for secret in (user.id, user.id.replace("-", ""), user.email, "national_id", upload["document_id"]):
        assert secret not in upload["upload_url"]
    row = owner_conn.one(DOCUMENT, id=upload["document_id"])
    assert row["status"] == "awaiting_upload" and row["object_name"] == name and row["size_bytes"] == len(JPEG)
    assert owner_conn.value(KYC_STATUS, id=user.id) == "pending"


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_upload_then_finalize_moves_to_review(api: Api, client: Any, gcs: Gcs, owner_conn: Any, structured: bool) -> None:
    user = api.signup()
    upload = request_upload(api, user, size=len(PNG))
    assert put_file(upload, PNG) == 200
    bucket, name = location(upload)
    obj = object_resource(bucket, name)
    assert obj["size"] == str(len(PNG))  # int64 as a JSON string, as GCS and Eventarc send it
    resp = post_finalize(client, obj, structured=structured)
    assert resp.status_code == 200, resp.get_data(as_text=True)

    row = owner_conn.one(DOCUMENT, id=upload["document_id"])
    assert row["status"] == "uploaded"
    assert row["received_size_bytes"] == len(PNG) and row["received_content_type"] == "image/png"
    assert row["md5_hash"] == obj["md5Hash"] and row["generation"] == int(obj["generation"])
    assert row["uploaded_at"] is not None
    assert owner_conn.value(KYC_STATUS, id=user.id) == "in_review"

    listing = api.get("/kyc/", user=user)
    assert listing.status_code == 200
    body = listing.get_json()
    assert body["kyc_status"] == "in_review" and body["last_decision"] is None and body["next_cursor"] is None
    [item] = body["items"]
    assert item["id"] == upload["document_id"] and item["status"] == "uploaded" and item["kind"] == "passport"
    text = listing.get_data(as_text=True)
    assert name not in text and "http" not in text and bucket not in text


def test_replayed_event_is_idempotent(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    upload, obj = upload_and_finalize(api, client, user)
    first = owner_conn.one(DOCUMENT, id=upload["document_id"])
    for _ in range(3):
        resp = post_finalize(client, obj, event_id="replayed-1")
        assert resp.status_code == 200
    again = owner_conn.one(DOCUMENT, id=upload["document_id"])
    assert again == first
    assert owner_conn.value(KYC_STATUS, id=user.id) == "in_review"
    assert storage.object_exists(*location(upload))


def test_size_mismatch_is_rejected_and_the_object_deleted(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    upload = request_upload(api, user, size=len(PNG))
    short = PNG[: len(PNG) // 2]  # within the signed range, but not what was declared
    assert put_file(upload, short) == 200
    obj = object_resource(*location(upload))
    assert post_finalize(client, obj).status_code == 200
    row = owner_conn.one(DOCUMENT, id=upload["document_id"])
    assert row["status"] == "rejected" and row["rejection_reason"].startswith("size_mismatch")
    assert row["received_size_bytes"] == len(short)
    assert not storage.object_exists(*location(upload))
    assert owner_conn.value(KYC_STATUS, id=user.id) == "pending"
    # a redelivery changes nothing
    assert post_finalize(client, obj).status_code == 200
    assert owner_conn.one(DOCUMENT, id=upload["document_id"]) == row
    item = api.get("/kyc/", user=user).get_json()["items"][0]
    assert item["status"] == "rejected" and item["rejection_reason"].startswith("size_mismatch")


def test_content_type_mismatch_is_rejected(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    upload = request_upload(api, user, content_type="image/png", size=len(PNG))
    # the emulator does not check signatures: a client lying about the type gets this far
    assert put_file(upload, PNG, headers={**upload["headers"], "Content-Type": "image/gif"}) == 200
    assert post_finalize(client, object_resource(*location(upload))).status_code == 200
    row = owner_conn.one(DOCUMENT, id=upload["document_id"])
    assert row["status"] == "rejected" and row["rejection_reason"].startswith("content_type_mismatch")
    assert not storage.object_exists(*location(upload))


def test_file_that_is_not_what_it_claims_is_rejected(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    fake = b"MZ\x90\x00" + b"\x00" * 400  # an executable, declared and sent as a PDF
    upload = request_upload(api, user, content_type="application/pdf", size=len(fake))
    assert put_file(upload, fake) == 200
    assert post_finalize(client, object_resource(*location(upload))).status_code == 200
    row = owner_conn.one(DOCUMENT, id=upload["document_id"])
    assert row["status"] == "rejected" and row["rejection_reason"].startswith("content_not_pdf")
    assert owner_conn.value(KYC_STATUS, id=user.id) == "pending"


def test_every_allowed_type_is_accepted(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    ids = []
    for data, ctype, kind in (
        (PNG, "image/png", "selfie"),
        (JPEG, "image/jpeg", "driving_licence"),
        (PDF, "application/pdf", "proof_of_address"),
    ):
        upload, _ = upload_and_finalize(api, client, user, data=data, content_type=ctype, kind=kind)
        ids.append(upload["document_id"])
    assert [owner_conn.one(DOCUMENT, id=i)["status"] for i in ids] == ["uploaded"] * 3


def test_replaced_object_is_rejected(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    upload, first = upload_and_finalize(api, client, user)
    # in production the signer (objectCreator) cannot replace an object; the handler refuses one anyway
    assert put_file(upload, PNG[::-1][: len(PNG)]) == 200
    second = object_resource(*location(upload))
    assert second["generation"] != first["generation"]
    assert post_finalize(client, second).status_code == 200
    row = owner_conn.one(DOCUMENT, id=upload["document_id"])
    assert row["status"] == "rejected" and row["rejection_reason"].startswith("object_replaced")


def test_unknown_object_is_acknowledged_and_ignored(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    name = "kyc/" + "0" * 32
    storage.upload_bytes(gcs.kyc_bucket, name, PNG, "image/png")
    obj = object_resource(gcs.kyc_bucket, name)
    resp = post_finalize(client, obj, event_id="unknown-object-1")
    assert resp.status_code == 200
    assert owner_conn.value(BY_NAME, n=name) == 0
    assert owner_conn.value(DEAD_LETTERS, id="unknown-object-1") == 0
    assert storage.object_exists(gcs.kyc_bucket, name)  # not ours to delete


def test_event_from_another_bucket_does_not_touch_the_document(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    upload = request_upload(api, user, size=len(PNG))
    _, name = location(upload)
    storage.upload_bytes(gcs.exports_bucket, name, PNG, "image/png")
    assert post_finalize(client, object_resource(gcs.exports_bucket, name)).status_code == 200
    assert owner_conn.one(DOCUMENT, id=upload["document_id"])["status"] == "awaiting_upload"
    assert owner_conn.value(KYC_STATUS, id=user.id) == "pending"


def test_malformed_event_is_dead_lettered_not_retried(client: Any, gcs: Gcs, owner_conn: Any) -> None:
    resp = post_finalize(client, {"bucket": gcs.kyc_bucket, "size": "not a number"}, event_id="malformed-kyc-1")
    assert resp.status_code == 200
    assert owner_conn.value(DEAD_LETTERS, id="malformed-kyc-1") == 1


def test_other_event_types_are_ignored(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    upload = request_upload(api, user, size=len(PNG))
    assert put_file(upload, PNG) == 200
    obj = object_resource(*location(upload))
    assert post_finalize(client, obj, event_type="google.cloud.storage.object.v1.metadataUpdated").status_code == 200
    assert owner_conn.one(DOCUMENT, id=upload["document_id"])["status"] == "awaiting_upload"


def _body(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"kind": "passport", "content_type": "image/png", "size_bytes": 1000}
    body.update(over)
    return body


BAD: list[tuple[str, dict[str, Any], int]] = [
    ("wrong content type", {"json": _body(content_type="image/gif")}, 422),
    ("html", {"json": _body(content_type="text/html")}, 422),
    ("content type with parameters", {"json": _body(content_type="image/png; charset=binary")}, 422),
    ("too big", {"json": _body(size_bytes=10 * 1024 * 1024 + 1)}, 422),
    ("empty file", {"json": _body(size_bytes=0)}, 422),
    ("negative size", {"json": _body(size_bytes=-5)}, 422),
    ("size as string", {"json": _body(size_bytes="1000")}, 422),
    ("size as bool", {"json": _body(size_bytes=True)}, 422),
    ("size as float", {"json": _body(size_bytes=1000.5)}, 422),
    ("unknown kind", {"json": _body(kind="birth_certificate")}, 422),
    ("extra field", {"json": _body(object_name="kyc/mine")}, 422),
    ("user id injection", {"json": _body(user_id="00000000-0000-0000-0000-000000000000")}, 422),
    ("missing kind", {"json": {"content_type": "image/png", "size_bytes": 10}}, 422),
    ("not an object", {"json": ["passport"]}, 422),
    ("malformed json", {"data": b'{"kind": ', "content_type": "application/json"}, 400),
    ("form encoded", {"data": b"kind=passport", "content_type": "application/x-www-form-urlencoded"}, 415),
    ("NUL byte", {"json": _body(kind="pass\u0000port")}, 422),
]


@pytest.mark.parametrize("name,kwargs,status", BAD, ids=[c[0] for c in BAD])
def test_bad_upload_requests_write_nothing(api: Api, owner_conn: Any, name: str, kwargs: dict[str, Any], status: int) -> None:
    user = api.signup()
    resp = api.client.post("/kyc/documents", headers=user.headers, **kwargs)
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert set(resp.get_json()) == {"error"}
    assert owner_conn.value(USER_DOCUMENT_COUNT, id=user.id) == 0
    assert owner_conn.value(KYC_STATUS, id=user.id) == "none"


def test_signed_out_callers_are_refused(api: Api) -> None:
    assert api.post("/kyc/documents", json=_body()).status_code == 401
    assert api.get("/kyc/").status_code == 401
    assert api.get("/kyc/", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_users_see_only_their_own_documents(api: Api, client: Any, gcs: Gcs) -> None:
    alice, bob = api.signup(), api.signup()
    upload, _ = upload_and_finalize(api, client, alice)
    mine = api.get("/kyc/", user=alice).get_json()
    theirs = api.get("/kyc/", user=bob).get_json()
    assert [i["id"] for i in mine["items"]] == [upload["document_id"]]
    assert theirs == {"kyc_status": "none", "last_decision": None, "items": [], "next_cursor": None}
    # a cursor is only a position in the caller's own list
    for _ in range(2):
        request_upload(api, alice)
    page = api.get("/kyc/?limit=1", user=alice).get_json()
    other = api.get(f"/kyc/?limit=5&cursor={page['next_cursor']}", user=bob).get_json()
    assert other["items"] == []


def test_documents_are_paginated(api: Api, gcs: Gcs) -> None:
    user = api.signup()
    made = [request_upload(api, user)["document_id"] for _ in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        resp = api.get("/kyc/?limit=2" + (f"&cursor={cursor}" if cursor else ""), user=user)
        assert resp.status_code == 200
        page = resp.get_json()
        assert len(page["items"]) <= 2
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == list(reversed(made))
    for bad in ("garbage", "e30", "x" * 600):
        resp = api.get(f"/kyc/?cursor={bad}", user=user)
        assert resp.status_code == 422 and error_code(resp) in ("invalid_cursor", "validation_failed")
    assert api.get("/kyc/?limit=0", user=user).status_code == 422
    assert api.get("/kyc/?limit=abc", user=user).status_code == 422
    assert api.get("/kyc/?colour=red", user=user).status_code == 422


def test_open_upload_urls_are_capped(api: Api, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    for _ in range(10):
        request_upload(api, user)
    resp = api.post("/kyc/documents", user=user, json=_body())
    assert resp.status_code == 429 and error_code(resp) == "too_many_open_uploads"
    assert int(resp.headers["Retry-After"]) >= 1
    assert owner_conn.value(USER_DOCUMENT_COUNT, id=user.id) == 10


def test_idempotency_key_returns_the_same_upload(api: Api, gcs: Gcs, owner_conn: Any) -> None:
    user = api.signup()
    first = api.post("/kyc/documents", user=user, json=_body(), headers={"Idempotency-Key": "kyc-1"})
    again = api.post("/kyc/documents", user=user, json=_body(), headers={"Idempotency-Key": "kyc-1"})
    assert first.status_code == again.status_code == 201
    assert first.get_json()["document_id"] == again.get_json()["document_id"]
    assert owner_conn.value(USER_DOCUMENT_COUNT, id=user.id) == 1
    other = api.post("/kyc/documents", user=user, json=_body(size_bytes=5), headers={"Idempotency-Key": "kyc-1"})
    assert other.status_code == 422


def test_object_names_cannot_carry_identifying_data(api: Api, owner_conn: Any) -> None:
    """The schema itself refuses an object name that is not kyc/<random hex>."""
    from pg8000.exceptions import DatabaseError

    from shared.db import CHECK_VIOLATION, sqlstate

    user = api.signup()
    insert = Query(
        "t_kyc_bad_name",
        """INSERT INTO kyc_documents (user_id, bucket, object_name, kind, content_type, size_bytes, upload_expires_at)
           VALUES (CAST(:u AS uuid), 'b-kyc', :name, 'passport', 'image/png', 10, now() + interval '1 minute')""",
        prepared=False,
    )
    with pytest.raises(DatabaseError) as err:
        owner_conn.execute(insert, u=user.id, name=f"kyc/{user.email}")
    assert sqlstate(err.value) == CHECK_VIOLATION


def test_database_unavailable_raises_so_the_event_is_retried(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    """With the database down the handler raises (Eventarc redelivers); the redelivery then applies it."""
    import socket

    from functions.kyc import flows
    from functions.kyc.models import StorageObject
    from shared.config import get_settings
    from shared.db import Database, get_db
    from shared.errors import ServiceUnavailable

    user = api.signup()
    upload = request_upload(api, user, size=len(PNG))
    assert put_file(upload, PNG) == 200
    obj = StorageObject.model_validate(object_resource(*location(upload)))
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = Database(get_settings().model_copy(update={"database_url": f"postgresql://earnpay_app@127.0.0.1:{port}/earnpay"}))
    with pytest.raises(ServiceUnavailable):
        flows.record_upload(down, obj)
    down.dispose()
    assert owner_conn.one(DOCUMENT, id=upload["document_id"])["status"] == "awaiting_upload"
    assert flows.record_upload(get_db(), obj) == "recorded"
    assert flows.record_upload(get_db(), obj) == "duplicate"
    assert owner_conn.value(KYC_STATUS, id=user.id) == "in_review"


def test_sync_applies_an_upload_whose_event_never_came(api: Api, gcs: Gcs, owner_conn: Any) -> None:
    """Locally the emulator sends no events; in production an event may be lost: the sweep catches up."""
    from functions.kyc import flows
    from shared.db import get_db

    user = api.signup()
    uploaded = request_upload(api, user, size=len(PNG))
    never = request_upload(api, user, size=len(PNG))
    assert put_file(uploaded, PNG) == 200
    assert flows.sync_document(get_db(), never["document_id"]) == "missing"
    assert flows.sync_document(get_db(), uploaded["document_id"]) == "recorded"
    assert flows.sync_document(get_db(), uploaded["document_id"]) == "duplicate"
    assert owner_conn.value(KYC_STATUS, id=user.id) == "in_review"
    # the sweep (over every user's waiting documents) leaves one with nothing uploaded as it is
    outcomes = flows.reconcile_uploads(get_db(), min_age_s=0, limit=10_000)
    assert outcomes.get("missing", 0) >= 1
    assert owner_conn.one(DOCUMENT, id=never["document_id"])["status"] == "awaiting_upload"


def test_upload_arriving_after_erasure_is_deleted(api: Api, client: Any, gcs: Gcs, owner_conn: Any) -> None:
    from shared.db import Query

    user = api.signup()
    upload = request_upload(api, user, size=len(PNG))
    owner_conn.execute(
        Query(
            "t_erase_doc", "UPDATE kyc_documents SET status = 'deleted', deleted_at = now() WHERE id = CAST(:id AS uuid)", prepared=False
        ),
        id=upload["document_id"],
    )
    assert put_file(upload, PNG) == 200  # the signed URL was still valid
    assert storage.object_exists(*location(upload))
    assert post_finalize(client, object_resource(*location(upload))).status_code == 200
    assert not storage.object_exists(*location(upload))
    assert owner_conn.one(DOCUMENT, id=upload["document_id"])["status"] == "deleted"
