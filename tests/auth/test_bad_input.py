"""Hostile input: every case is a clear 4xx JSON error and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest

from shared.db import Query
from tests.helpers import PASSWORD, Api, unique_email

COUNTS = Query(
    "t_counts",
    "SELECT (SELECT count(*) FROM users) AS users, (SELECT count(*) FROM sessions) AS sessions",
    prepared=False,
)


def _signup(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"email": unique_email(), "password": PASSWORD, "display_name": "Name"}
    body.update(over)
    return body


CASES: list[tuple[str, dict[str, Any], int]] = [
    ("malformed json", {"data": b'{"email": "a@b.c", ', "content_type": "application/json"}, 400),
    ("not an object", {"json": ["a", "b"]}, 422),
    ("wrong content type", {"data": b"email=a@b.c", "content_type": "application/x-www-form-urlencoded"}, 415),
    ("wrong type", {"json": _signup(display_name=123)}, 422),
    ("number as string is not coerced", {"json": _signup(password=1234567890123)}, 422),
    ("unknown field", {"json": _signup(is_admin=True)}, 422),
    ("role injection", {"json": _signup(role="admin")}, 422),
    ("very long name", {"json": _signup(display_name="x" * 10_000)}, 422),
    ("very long email", {"json": _signup(email="a" * 300 + "@example.com")}, 422),
    ("bad email", {"json": _signup(email="not-an-email")}, 422),
    ("short password", {"json": _signup(password="short")}, 422),
    ("NUL byte", {"json": _signup(display_name="abc\u0000def")}, 422),
    ("control chars", {"json": _signup(display_name="abc\u0007")}, 422),
    (
        "lone surrogate",
        {"data": b'{"email":"x@example.com","password":"long enough pw","display_name":"\\ud800"}', "content_type": "application/json"},
        422,
    ),
    ("sql injection email", {"json": _signup(email="x'; DROP TABLE users;--@example.com")}, 422),
    ("blank name", {"json": _signup(display_name="   ")}, 422),
    ("null body fields", {"json": {"email": None, "password": None, "display_name": None}}, 422),
    ("empty body", {"data": b"", "content_type": "application/json"}, 422),
    ("oversized body", {"data": b'{"email":"' + b"a" * 70_000 + b'"}', "content_type": "application/json"}, 413),
    ("bad referral code", {"json": _signup(referral_code="' OR 1=1 --")}, 422),
]


@pytest.mark.parametrize("name,kwargs,status", CASES, ids=[c[0] for c in CASES])
def test_bad_signup_bodies(api: Api, owner_conn: Any, name: str, kwargs: dict[str, Any], status: int) -> None:
    before = owner_conn.one(COUNTS)
    resp = api.client.post("/auth/signup", headers={"X-Forwarded-For": "10.9.9.9"}, **kwargs)
    assert resp.status_code == status, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"].islower() and body["error"]["message"]
    assert resp.headers["X-Request-Id"]
    assert owner_conn.one(COUNTS) == before


def test_odd_but_valid_unicode_is_accepted(api: Api) -> None:
    body = _signup(display_name="Zoë 🎬 नमस्ते \u200b")
    assert api.post("/auth/signup", json=body).status_code == 202
    resp = api.login(body["email"], body["password"])
    assert resp.status_code == 200
    assert resp.get_json()["user"]["display_name"].startswith("Zoë 🎬")


def test_injection_shaped_login_is_just_wrong(api: Api) -> None:
    resp = api.login("' OR '1'='1", "' OR '1'='1")
    assert resp.status_code == 401


def test_unknown_routes_methods_and_query_params(api: Api, client: Any) -> None:
    assert api.get("/auth/nowhere").status_code == 404
    resp = api.get("/auth/login")
    assert resp.status_code == 405 and "POST" in resp.headers["Allow"]
    assert client.get("/no-such-function/").status_code == 404
    user = api.signup()
    assert api.get("/auth/me?debug=1", user=user).status_code == 422


def test_request_id_is_echoed_when_sane_and_replaced_when_not(api: Api) -> None:
    ok = api.get("/health/", headers={"X-Request-Id": "client-req-12345"})
    assert ok.headers["X-Request-Id"] == "client-req-12345"
    bad = api.get("/health/", headers={"X-Request-Id": "<script>"})
    assert bad.headers["X-Request-Id"] != "<script>"


def test_health_reports_database_pool_and_migration(api: Api) -> None:
    resp = api.get("/health/")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok"
    assert body["database"]["migration_version"] >= 1
    assert body["database"]["round_trip_ms"] >= 0
    assert {"size", "checked_out", "idle", "overflow"} <= set(body["pool"])
