"""Data exports: requested over HTTP, built by the export_user_data CloudEvent handler (and inline when
Pub/Sub is off), stored in the private bucket, downloadable by their owner only, and complete."""

from __future__ import annotations

import json
import re
import urllib.request
import uuid
from typing import Any

from werkzeug.test import Client

from functions.privacy import flows, service
from functions.privacy import queries as pq
from shared import storage
from shared.db import Query, get_db
from shared.http import dumps
from tests.fixtures.gcs import Gcs
from tests.helpers import Api, User, error_code
from tests.privacy.support import count_rows_of, deliver_export, populate, user_tables

EXPORT_ROW = Query(
    "t_export_row",
    "SELECT status, bucket, object_name, attempts, size_bytes FROM data_exports WHERE id = CAST(:id AS uuid)",
    prepared=False,
)
DEAD_LETTERS = Query(
    "t_export_dead_letters", "SELECT reason, code FROM dead_letters WHERE source = 'export_user_data' AND message_id = :m", prepared=False
)


def download(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310  # the local emulator
        assert resp.status == 200
        return dict(json.loads(resp.read()))


def queue_only(user_id: str) -> str:
    """A queued export row, as POST /export leaves it when Pub/Sub is on (the handler has not run yet)."""
    with get_db().connection() as conn:
        row = conn.one(pq.INSERT_EXPORT, user_id=user_id)
    assert row is not None
    return str(row["id"])


def test_export_over_http_is_built_inline_and_only_its_owner_sees_it(api: Api, gcs: Gcs) -> None:
    user = api.signup(name="Exporting User")
    resp = api.post("/privacy/export", user=user)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    export = resp.get_json()
    assert export["status"] == "ready"
    assert export["created"] is True
    assert export["download_url"]
    bundle = download(export["download_url"])
    assert bundle["format"] == service.FORMAT
    assert bundle["user_id"] == user.id
    assert bundle["export_id"] == export["id"]
    assert bundle["data"]["users"][0]["email"] == user.email
    assert bundle["data"]["users"][0]["display_name"] == "Exporting User"
    # the API's one JSON style: compact, every timestamp RFC 3339 in UTC with microseconds and Z
    with urllib.request.urlopen(export["download_url"], timeout=10) as raw:  # noqa: S310  # the local emulator
        text = raw.read().decode()
    assert text == dumps(json.loads(text))
    stamps = re.findall(r'"[a-z_]+_at":"([^"]*)"', text)
    assert stamps, stamps
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", t) for t in stamps), stamps

    again = api.get(f"/privacy/export/{export['id']}", user=user)
    assert again.status_code == 200
    assert again.get_json()["status"] == "ready"
    assert again.get_json()["download_url"]
    # the object name reveals nothing about the user
    with get_db().connection() as conn:
        row = conn.one(EXPORT_ROW, id=export["id"])
    assert row is not None
    assert user.id not in row["object_name"]
    assert row["bucket"] == gcs.exports_bucket

    other = api.signup()
    for path in (f"/privacy/export/{export['id']}", f"/privacy/export/{uuid.uuid4()}", "/privacy/export/not-a-uuid"):
        resp = api.get(path, user=other)
        assert resp.status_code == 404, path
        assert error_code(resp) == "export_not_found", path
        assert user.email not in resp.get_data(as_text=True)
    assert api.get(f"/privacy/export/{export['id']}").status_code == 401


def test_the_cloudevent_handler_builds_a_queued_export_once(api: Api, client: Client, gcs: Gcs) -> None:
    user = api.signup()
    export_id = queue_only(user.id)
    pending = api.get(f"/privacy/export/{export_id}", user=user).get_json()
    assert pending["status"] == "queued" and pending["download_url"] is None
    # asking again while one is queued returns the queued one
    with get_db().connection() as conn:
        assert conn.one(pq.INSERT_EXPORT, user_id=user.id) is None

    first = deliver_export(client, {"export_id": export_id, "user_id": user.id})
    assert first.status_code == 200, first.get_data(as_text=True)
    with get_db().connection() as conn:
        row = conn.one(EXPORT_ROW, id=export_id)
    assert row is not None and row["status"] == "ready" and row["attempts"] == 1
    assert storage.object_exists(row["bucket"], row["object_name"])
    ready = api.get(f"/privacy/export/{export_id}", user=user).get_json()
    assert ready["status"] == "ready" and download(ready["download_url"])["user_id"] == user.id

    # a redelivery changes nothing
    assert deliver_export(client, {"export_id": export_id, "user_id": user.id}).status_code == 200
    with get_db().connection() as conn:
        assert conn.one(EXPORT_ROW, id=export_id) == row


def test_bad_export_messages_are_dead_lettered_not_retried(api: Api, client: Client, gcs: Gcs) -> None:
    owner = api.signup()
    stranger = api.signup()
    export_id = queue_only(owner.id)
    cases = [
        ({"export_id": "nope", "user_id": owner.id}, "malformed_message"),
        ({"user_id": owner.id}, "malformed_message"),
        ({"export_id": str(uuid.uuid4()), "user_id": owner.id}, "unknown_export"),
        # someone else's export: never built for the wrong user
        ({"export_id": export_id, "user_id": stranger.id}, "unknown_export"),
    ]
    for payload, code in cases:
        message_id = uuid.uuid4().hex
        resp = deliver_export(client, payload, message_id=message_id)
        assert resp.status_code == 200, (payload, resp.get_data(as_text=True))
        with get_db().connection() as conn:
            assert [r["code"] for r in conn.all(DEAD_LETTERS, m=message_id)] == [code], payload
    with get_db().connection() as conn:
        assert conn.one(EXPORT_ROW, id=export_id)["status"] == "queued"  # type: ignore[index]


def test_process_exports_command_builds_what_is_still_queued(api: Api, gcs: Gcs) -> None:
    user = api.signup()
    export_id = queue_only(user.id)
    outcomes = flows.process_pending(get_db())
    assert outcomes.get("ready", 0) >= 1
    with get_db().connection() as conn:
        assert conn.one(EXPORT_ROW, id=export_id)["status"] == "ready"  # type: ignore[index]


def test_export_contains_every_table_that_references_the_user(api: Api, client: Client, owner_conn: Any, gcs: Gcs) -> None:
    subject = populate(api, client, owner_conn)
    user: User = subject.user
    resp = api.post("/privacy/export", user=user)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    data = download(resp.get_json()["download_url"])["data"]

    tables = user_tables(owner_conn)
    assert {"users", "sessions", "earnings", "payout_requests", "kyc_documents", "audit_log", "data_exports"} <= set(tables)
    missing = sorted(set(tables) - set(pq.EXPORT_SECTIONS) - set(pq.WITHHELD_FROM_EXPORT))
    assert not missing, f"tables holding user data with no export section in functions/privacy/queries.py: {missing}"
    assert set(pq.WITHHELD_FROM_EXPORT) <= set(tables), "a withheld table must be one that references the user"
    assert not set(pq.WITHHELD_FROM_EXPORT) & set(data), "a withheld table must not be in the export"
    for table, columns in sorted(tables.items()):
        if table in pq.WITHHELD_FROM_EXPORT:
            continue
        expected = count_rows_of(owner_conn, table, columns, user.id)
        assert len(data[table]) == expected, (table, columns, expected, data[table])

    # the populated user really has rows in the tables that matter, with the right content
    assert data["users"][0]["email"] == user.email
    assert data["users"][0]["display_name"] == subject.display_name
    assert any(s["ip"] == subject.ip and s["user_agent"] == subject.user_agent for s in data["sessions"])
    assert {a["succeeded"] for a in data["login_attempts"]} == {True, False}
    assert any(e["type"] == "adjustment" and e["amount_micros"] == 20_000_000 for e in data["earnings"])
    assert data["balances"][0]["available_micros"] == sum(e["amount_micros"] for e in data["earnings"])
    assert [p["video_id"] for p in data["video_progress"]] == [subject.video_id]
    assert data["kyc_documents"]
    assert data["kyc_reviews"][0]["decision"] == "verified"
    assert [p["id"] for p in data["payout_requests"]] == [subject.payout_id]
    assert data["payout_requests"][0]["status"] == "rejected"
    assert [e["to_state"] for e in data["payout_events"]] == ["requested", "rejected"]
    assert data["payout_methods"][0]["type"] == "paypal"
    assert {a["action"] for a in data["audit_log"]} >= {"ledger.adjustment", "kyc.decision", "payout.reject", "user.view"}
    assert data["idempotency_keys"]
    assert data["data_exports"]
    # secrets never leave: token hashes, password hashes, encrypted payout details, storage object names
    text = json.dumps(data)
    for secret in ("token_hash", "password_hash", "object_name", "ciphertext", "wrapped"):
        assert secret not in text
    assert subject.paypal_email not in text  # only the masked label
    assert "actor_id" not in json.dumps(data["audit_log"])
