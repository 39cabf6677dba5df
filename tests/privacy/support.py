"""Helpers for the privacy tests: a user with rows in as many tables as the product can produce, and
catalogue discovery of every table and column that could hold data about a user."""

from __future__ import annotations

import base64
import ipaddress
import json
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from werkzeug.test import Client, TestResponse

from shared.db import Conn, Query
from tests.helpers import PASSWORD, Api, User
from tests.kyc.support import upload_and_finalize

# Every (table, columns) whose columns point at users(id), plus users itself by its id. Partitions
# are reached through their parent.
USER_REFERENCES = Query(
    "t_privacy_user_references",
    """
    SELECT t.relname AS table_name, array_agg(DISTINCT a.attname::text ORDER BY a.attname::text) AS columns
      FROM pg_constraint c
      JOIN pg_class t ON t.oid = c.conrelid
      JOIN pg_namespace n ON n.oid = t.relnamespace
      JOIN LATERAL unnest(c.conkey) AS k(attnum) ON true
      JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
     WHERE c.contype = 'f' AND c.confrelid = 'public.users'::regclass AND n.nspname = 'public' AND NOT t.relispartition
     GROUP BY t.relname
    UNION ALL
    -- a user_id column without a foreign key is just as much the user's
    SELECT c.table_name::text, array_agg(c.column_name::text ORDER BY c.column_name::text)
      FROM information_schema.columns c
      JOIN pg_class t ON t.relname = c.table_name AND t.relnamespace = 'public'::regnamespace
     WHERE c.table_schema = 'public' AND c.column_name = 'user_id' AND t.relkind IN ('r', 'p') AND NOT t.relispartition
       AND NOT EXISTS (SELECT 1 FROM pg_constraint f WHERE f.conrelid = t.oid AND f.contype = 'f'
                                                     AND f.confrelid = 'public.users'::regclass)
     GROUP BY c.table_name
    UNION ALL
    SELECT 'users', ARRAY['id']
    """,
    prepared=False,
)

# Every column of every table that can hold text: where personal data could hide.
TEXT_COLUMNS = Query(
    "t_privacy_text_columns",
    """
    SELECT c.table_name::text AS table_name, c.column_name::text AS column_name, c.data_type::text AS data_type
      FROM information_schema.columns c
      JOIN pg_class t ON t.relname = c.table_name AND t.relnamespace = 'public'::regnamespace
     WHERE c.table_schema = 'public' AND t.relkind IN ('r', 'p') AND NOT t.relispartition
       AND (c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'inet', 'cidr', 'citext')
            OR (c.data_type = 'ARRAY' AND c.udt_name IN ('_text', '_varchar', '_jsonb', '_json', '_inet')))
     ORDER BY 1, 2
    """,
    prepared=False,
)


def user_tables(conn: Conn) -> dict[str, list[str]]:
    """table -> the columns that reference a user."""
    out: dict[str, list[str]] = {}
    for row in conn.all(USER_REFERENCES):
        out.setdefault(row["table_name"], [])
        out[row["table_name"]] = sorted({*out[row["table_name"]], *row["columns"]})
    return out


def count_rows_of(conn: Conn, table: str, columns: list[str], user_id: str) -> int:
    where = " OR ".join(f'"{c}" = CAST(:u AS uuid)' for c in columns)
    return int(conn.value(Query(f"t_count_{table}", f'SELECT count(*) FROM "{table}" WHERE {where}', prepared=False), u=user_id))


def find_text(conn: Conn, needle: str) -> list[tuple[str, str, int]]:
    """Every (table, column, rows) whose text contains ``needle`` (case-insensitive)."""
    hits = []
    for col in conn.all(TEXT_COLUMNS):
        expr = f'host("{col["column_name"]}")' if col["data_type"] in ("inet", "cidr") else f'"{col["column_name"]}"::text'
        sql = f'SELECT count(*) FROM "{col["table_name"]}" WHERE strpos(lower({expr}), lower(:needle)) > 0'
        n = int(conn.value(Query("t_find_text", sql, prepared=False), needle=needle))
        if n:
            hits.append((col["table_name"], col["column_name"], n))
    return hits


def push_body(payload: dict[str, Any], *, message_id: str | None = None) -> dict[str, Any]:
    """A Pub/Sub push request's JSON body, exactly as the push subscription sends it."""
    return {
        "message": {
            "data": base64.b64encode(json.dumps(payload).encode()).decode(),
            "messageId": message_id or str(uuid.uuid4().int)[:16],
            "publishTime": "2026-01-01T00:00:00.000Z",
            "attributes": {},
        },
        "subscription": "projects/earnpay-test/subscriptions/privacy-exports-push",
    }


def deliver_export(client: Client, payload: dict[str, Any], *, message_id: str | None = None) -> TestResponse:
    return client.post("/export_user_data", json=push_body(payload, message_id=message_id))


@dataclass
class Subject:
    """A populated user and the personal strings we gave the system about them."""

    user: User
    display_name: str
    ip: str
    user_agent: str
    paypal_email: str
    video_id: str
    payout_id: str
    admin: User
    finance: User
    compliance: User

    @property
    def needles(self) -> dict[str, str]:
        return {
            "email": self.user.email,
            "display_name": self.display_name,
            "ip": self.ip,
            "user_agent": self.user_agent,
            "paypal_email": self.paypal_email,
        }


def _ok(resp: TestResponse, *statuses: int) -> dict[str, Any]:
    assert resp.status_code in (statuses or (200, 201)), resp.get_data(as_text=True)
    return dict(resp.get_json())


def populate(api: Api, client: Client, owner_conn: Conn) -> Subject:
    """A user who signed up, logged in (and failed once), watched, earned, passed KYC, added a PayPal
    method, asked for a payout (rejected by finance) and was looked at by support."""
    tag = secrets.token_hex(4)
    name = f"Privacy Subject {tag}"
    user = api.signup(name=name)
    # a distinctive address (IPv6, so no other address contains it) and user agent for every call
    ip = ipaddress.ip_address(f"fd00:{secrets.token_hex(2)}::{secrets.token_hex(2)}").compressed
    agent = f"PrivacyTestAgent/{tag}"
    user.ip = ip
    bad = client.post("/auth/login", json={"email": user.email, "password": "wrong password!"}, headers={"X-Forwarded-For": ip})
    assert bad.status_code == 401
    login = client.post(
        "/auth/login", json={"email": user.email, "password": PASSWORD}, headers={"X-Forwarded-For": ip, "User-Agent": agent}
    )
    user.token = _ok(login)["session"]["token"]

    admin = api.staff(owner_conn, "admin")
    finance = api.staff(owner_conn, "finance")
    compliance = api.staff(owner_conn, "compliance")
    support = api.staff(owner_conn, "support")

    # earnings: a manual credit (an audit entry about the user too)
    _ok(
        api.post(
            "/admin/adjustments",
            user=admin,
            json={"user_id": user.id, "amount_micros": 20_000_000, "reason": "privacy test credit"},
            headers={"Idempotency-Key": uuid.uuid4().hex},
        )
    )
    # progress on a video
    video = _ok(
        api.post(
            "/admin/videos",
            user=admin,
            json={"title": f"Privacy video {tag}", "duration_seconds": 600, "reward_micros": 1_000, "slug": f"privacy-{tag}"},
        )
    )
    _ok(api.post(f"/progress/{video['id']}", user=user, json={"position_seconds": 0, "playing": True, "client_seq": 1}))

    # KYC: a document through the signed URL and the finalize event, then a compliance decision
    upload_and_finalize(api, client, user)
    _ok(api.post(f"/admin/kyc/{user.id}/decision", user=compliance, json={"decision": "verified", "reason": "document matches"}))

    # a payout method and a payout (with an Idempotency-Key), rejected by finance
    paypal = f"payee-{tag}@example.net"
    _ok(api.post("/payouts/methods", user=user, json={"type": "paypal", "email": paypal, "password": PASSWORD, "make_default": True}))
    payout = _ok(
        api.post("/payouts/", user=user, json={"amount_cents": 1_000, "password": PASSWORD}, headers={"Idempotency-Key": uuid.uuid4().hex})
    )
    _ok(api.post(f"/admin/payouts/{payout['id']}/reject", user=finance, json={"reason": "please verify the method"}))

    # support looked at the account
    _ok(api.get(f"/admin/users/{user.id}", user=support))
    return Subject(user, name, ip, agent, paypal, str(video["id"]), str(payout["id"]), admin, finance, compliance)
