"""Helpers for the KYC tests: upload through the signed URL, and post the finalize event as Eventarc does."""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import unquote, urlparse

from werkzeug.test import Client, TestResponse

from shared import storage
from shared.db import Query
from tests.helpers import Api, User

FINALIZED = "google.cloud.storage.object.v1.finalized"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x42" * 700
PDF = b"%PDF-1.7\n" + b"% test document\n" * 40

DOCUMENT = Query(
    "t_kyc_document",
    """SELECT id::text AS id, user_id::text AS user_id, bucket, object_name, kind, content_type, size_bytes, status,
              generation, received_content_type, received_size_bytes, md5_hash, crc32c, rejection_reason, review_id,
              uploaded_at, rejected_at
         FROM kyc_documents WHERE id = CAST(:id AS uuid)""",
    prepared=False,
)
USER_DOCUMENT_COUNT = Query("t_kyc_user_docs", "SELECT count(*) FROM kyc_documents WHERE user_id = CAST(:id AS uuid)", prepared=False)
KYC_STATUS = Query("t_kyc_status", "SELECT kyc_status FROM users WHERE id = CAST(:id AS uuid)", prepared=False)


def request_upload(
    api: Api, user: User, *, kind: str = "passport", content_type: str = "image/png", size: int | None = None
) -> dict[str, Any]:
    body = {"kind": kind, "content_type": content_type, "size_bytes": size if size is not None else len(PNG)}
    resp = api.post("/kyc/documents", user=user, json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return dict(resp.get_json())


def location(upload: dict[str, Any]) -> tuple[str, str]:
    """(bucket, object name) of a signed URL (path-style: /<bucket>/<object>)."""
    path = unquote(urlparse(upload["upload_url"]).path).lstrip("/")
    bucket, _, name = path.partition("/")
    return bucket, name


def put_file(upload: dict[str, Any], data: bytes, headers: dict[str, str] | None = None) -> int:
    """PUTs ``data`` to the signed URL with the headers the API said to send (or ``headers``)."""
    req = urllib.request.Request(upload["upload_url"], data=data, method=upload["method"], headers=headers or upload["headers"])  # noqa: S310  # the emulator URL the API under test returned
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310  # the local emulator
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def get_url(url: str) -> tuple[int, bytes, str]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310  # the local emulator
        return int(resp.status), resp.read(), str(resp.headers.get("Content-Type"))


def object_resource(bucket: str, name: str) -> dict[str, Any]:
    """The object's resource as GCS reports it: exactly what Eventarc puts in the event's data."""
    meta = storage.object_metadata(bucket, name)
    assert meta is not None, f"{bucket}/{name} is not in the emulator"
    return meta


def post_finalize(
    client: Client, obj: dict[str, Any], *, event_id: str | None = None, structured: bool = False, event_type: str = FINALIZED
) -> TestResponse:
    """Posts the CloudEvent Eventarc sends for a finalized object (binary mode, or structured JSON)."""
    attributes = {
        "id": event_id or str(uuid.uuid4().int)[:16],
        "source": f"//storage.googleapis.com/projects/_/buckets/{obj.get('bucket')}",
        "type": event_type,
        "subject": f"objects/{obj.get('name')}",
        "specversion": "1.0",
        "time": obj.get("timeCreated") or dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
    }
    if structured:
        envelope = {**attributes, "datacontenttype": "application/json", "data": obj}
        return client.post("/kyc_document_uploaded", data=json.dumps(envelope), headers={"Content-Type": "application/cloudevents+json"})
    headers = {f"ce-{k}": v for k, v in attributes.items()}
    headers["Content-Type"] = "application/json"
    return client.post("/kyc_document_uploaded", data=json.dumps(obj), headers=headers)


def upload_and_finalize(
    api: Api, client: Client, user: User, *, data: bytes = PNG, content_type: str = "image/png", kind: str = "passport"
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The whole happy path: upload URL, PUT, finalize event. Returns (upload answer, object resource)."""
    upload = request_upload(api, user, kind=kind, content_type=content_type, size=len(data))
    assert put_file(upload, data) == 200
    obj = object_resource(*location(upload))
    resp = post_finalize(client, obj)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return upload, obj
