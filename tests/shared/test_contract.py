"""The one API contract: the money shape and its formatting rule (Python = SQL), the JSON style,
authentication before role before body, hostile JSON, and answers held to their documented models."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from typing import Any

import flask
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from functions.ledger.service import MAX_ENTRY
from main import ROUTERS
from shared.db import Conn, Query, get_db
from shared.http import MAX_JSON_DEPTH, Router, dumps, json_depth
from shared.models import Money, format_micros, money, rfc3339
from tests.helpers import Api, error_code

FORMAT_MANY = Query("t_format_many", "SELECT a, format_micros(a) AS f FROM unnest(CAST(:amounts AS bigint[])) a", prepared=False)
RFC3339_US_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


# --- money -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("micros", "formatted"),
    [
        (0, "$0.00"),
        (1, "$0.000001"),
        (2_500, "$0.0025"),
        (10_000, "$0.01"),
        (1_500_000, "$1.50"),
        (1_234_567, "$1.234567"),
        (20_010_000, "$20.01"),
        (-10_000, "-$0.01"),
        (-1_029, "-$0.001029"),
        (1_234_567_890_000, "$1,234,567.89"),
        (MAX_ENTRY, "$1,000,000.00"),
    ],
)
def test_one_formatting_rule(micros: int, formatted: str) -> None:
    assert format_micros(micros) == formatted
    assert money(micros) == {"micros": micros, "formatted": formatted, "currency": "USD"}
    assert Money.model_validate(money(micros)).model_dump() == money(micros)


# Every amount a balance can hold: far beyond one entry, both signs (bigint's full range minus one
# at each end, where abs() overflows: no balance comes near it).
_amounts = st.lists(
    st.one_of(
        st.integers(min_value=-(2**63) + 1, max_value=2**63 - 1),
        st.integers(min_value=-100 * MAX_ENTRY, max_value=100 * MAX_ENTRY),
        st.integers(min_value=-10_000_000, max_value=10_000_000),
        st.integers(min_value=0, max_value=10**9).map(lambda n: n * 10_000),  # whole cents
    ),
    min_size=1,
    max_size=200,
)


@settings(max_examples=60, deadline=None)
@given(amounts=_amounts)
def test_sql_and_python_format_every_amount_alike(amounts: list[int]) -> None:
    """History and export build money in PostgreSQL, the rest in Python: one rule, checked on many amounts."""
    with get_db().connection() as conn:
        rows = conn.all(FORMAT_MANY, amounts=amounts)
    assert [(r["a"], r["f"]) for r in rows] == [(a, format_micros(a)) for a in amounts]


def test_one_timestamp_style() -> None:
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == "2026-01-02T03:04:05.000000Z"
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5, 60, tzinfo=dt.timezone(dt.timedelta(hours=2)))) == "2026-01-02T01:04:05.000060Z"
    assert rfc3339(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"  # naive: taken as UTC
    assert dumps({"at": dt.datetime(2026, 1, 2, tzinfo=dt.UTC), "n": [1, 2]}) == '{"at":"2026-01-02T00:00:00.000000Z","n":[1,2]}'


# --- the JSON style of answers built in three different places -------------------------------------
def _timestamps(value: Any) -> list[str]:
    """Every string in ``value`` that starts like a date-time."""
    if isinstance(value, dict):
        return [t for v in value.values() for t in _timestamps(v)]
    if isinstance(value, list):
        return [t for v in value for t in _timestamps(v)]
    return [value] if isinstance(value, str) and re.match(r"\d{4}-\d\d-\d\dT", value) else []


def test_python_postgres_built_and_replayed_answers_share_one_style(api: Api, owner_conn: Conn) -> None:
    admin = api.staff(owner_conn, "admin")
    user = api.signup()
    key = uuid.uuid4().hex
    body = {"user_id": user.id, "amount_micros": 1_000_000, "reason": "style check"}
    first = api.post("/admin/adjustments", user=admin, json=body, headers={"Idempotency-Key": key})
    replay = api.post("/admin/adjustments", user=admin, json=body, headers={"Idempotency-Key": key})
    assert first.status_code == replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    history = api.get("/earnings/", user=user)
    export = api.get("/earnings/export", user=user)
    stats = api.get("/earnings/stats", user=user)
    for resp in (first, replay, history, export, stats):  # Python, Python, PostgreSQL, PostgreSQL, Python
        text = resp.get_data(as_text=True)
        assert text == dumps(json.loads(text)), f"not compact: {text[:200]}"
        stamps = _timestamps(json.loads(text))
        assert stamps and all(RFC3339_US_Z.match(t) for t in stamps), stamps
    # the replay is the first answer (jsonb keeps values, not key order: the keys are compared as JSON)
    assert replay.get_json() == first.get_json()
    # history items are export items plus whether each is still pending (docs/ledger.md, buckets)
    pending_keys = ("pending", "clears_at", "awaiting")
    assert export.get_json()["items"] == [{k: v for k, v in i.items() if k not in pending_keys} for i in history.get_json()["items"]]
    assert first.get_json()["amount"] == money(1_000_000) == history.get_json()["items"][0]["amount"]


# --- authentication, then role, then body ----------------------------------------------------------
BAD_BODIES: list[Any] = [{"nope": 1}, [1, 2], "not an object", None]


@pytest.mark.parametrize("bad", BAD_BODIES)
def test_unauthenticated_callers_get_401_whatever_the_body(api: Api, bad: Any) -> None:
    for path in ("/payouts/", "/payouts/methods", "/kyc/documents", "/admin/adjustments", f"/progress/{uuid.uuid4()}"):
        resp = api.post(path, json=bad)
        assert resp.status_code == 401 and error_code(resp) == "missing_session", (path, resp.get_data(as_text=True))
    raw = api.post("/payouts/", data=b"[" * 5000, headers={"Content-Type": "application/json"})
    assert raw.status_code == 401
    wrong_type = api.post("/payouts/", data=b"x=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert wrong_type.status_code == 401
    bad_query = api.get("/earnings/?limit=nope&zzz=1")
    assert bad_query.status_code == 401


def test_a_plain_user_on_a_staff_route_gets_403_before_the_body_is_read(api: Api, owner_conn: Conn) -> None:
    user = api.signup()
    for bad in BAD_BODIES:
        resp = api.post("/admin/adjustments", user=user, json=bad, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert resp.status_code == 403 and error_code(resp) == "role_forbidden", resp.get_data(as_text=True)
    assert api.get("/admin/users?limit=nope", user=user).status_code == 403
    # a staff member with the role gets the validation answer
    admin = api.staff(owner_conn, "admin")
    resp = api.post("/admin/adjustments", user=admin, json={"nope": 1}, headers={"Idempotency-Key": uuid.uuid4().hex})
    assert resp.status_code == 422 and error_code(resp) == "validation_failed"


def test_route_matching_still_comes_first(api: Api) -> None:
    assert api.post("/payouts/no/such/route", json={}).status_code == 404
    assert api.call("PUT", "/payouts/methods", json={}).status_code == 405


# --- hostile JSON ----------------------------------------------------------------------------------
def _nested(depth: int) -> bytes:
    return b'{"email":' + b"[" * depth + b"]" * depth + b"}"


HOSTILE: list[tuple[str, bytes, str]] = [
    ("depth 1,000", _nested(1_000), "json_too_deep"),
    ("depth 30,000", _nested(30_000), "json_too_deep"),
    ("depth 33 objects", b'{"a":' * 33 + b"1" + b"}" * 33, "json_too_deep"),
    ("unbalanced depth", b"[" * 40_000, "json_too_deep"),
    ("duplicate keys", b'{"email":"a@example.com","email":"b@example.com","password":"x"}', "duplicate_key"),
    ("1e400", b'{"email":1e400}', "number_out_of_range"),
    ("-1e400", b'{"email":-1e400}', "number_out_of_range"),
    ("5,000 digits", b'{"email":' + b"9" * 5_000 + b"}", "number_out_of_range"),
    ("60,000 digits", b'{"email":' + b"1" * 60_000 + b"}", "number_out_of_range"),
    ("a long fraction", b'{"email":0.' + b"1" * 5_000 + b"}", "number_out_of_range"),
    ("NaN", b'{"email":NaN}', "malformed_json"),
    ("Infinity", b'{"email":-Infinity}', "malformed_json"),
    ("truncated", b'{"email":"a', "malformed_json"),
    ("not UTF-8", b'{"email":"\xff"}', "malformed_json"),
]


@pytest.mark.parametrize(("label", "raw", "code"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_json_is_a_400_never_a_500(api: Api, label: str, raw: bytes, code: str, caplog: pytest.LogCaptureFixture) -> None:
    user = api.signup()
    for path, who in (("/auth/login", None), ("/payouts/methods", user), ("/auth/signup", None)):
        resp = api.post(path, user=who, data=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and error_code(resp) == code, (label, path, resp.get_data(as_text=True)[:300])
    assert not [r for r in caplog.records if r.levelname == "ERROR"], "a hostile body reached the error log"


def test_a_body_over_the_size_limit_is_413(api: Api) -> None:
    resp = api.post("/auth/login", data=b'{"email":"' + b"a" * 70_000 + b'"}', headers={"Content-Type": "application/json"})
    assert resp.status_code == 413 and error_code(resp) == "payload_too_large"


def test_depth_is_measured_without_parsing_and_brackets_in_strings_do_not_count(api: Api) -> None:
    assert json_depth(b"[" * 100_000) == 100_000  # no recursion: a flat scan
    assert json_depth(b'{"a":"' + b"[" * 500 + b'"}') <= 1
    assert json_depth(b'{"a":"\\"' + b"[" * 500 + b'"}') <= 1  # an escaped quote does not end the string
    ok = {"email": "x@example.com", "password": "[" * 100, "display_name": "{{{{ [[[[ }}}}"}
    resp = api.post("/auth/signup", json=ok)
    assert resp.status_code == 202, resp.get_data(as_text=True)
    deep_enough = b'{"a":' * MAX_JSON_DEPTH + b"1" + b"}" * MAX_JSON_DEPTH
    assert json_depth(deep_enough) == MAX_JSON_DEPTH


# --- answers are held to their models in the test environment -------------------------------------------
def test_an_answer_that_drifts_from_its_model_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.models import Response

    class Thing(Response):
        made: str
        cost: Money

    router = Router("test_contract")
    payloads: dict[str, Any] = {"good": {"made": "yes", "cost": money(2_500)}}

    @router.route("POST", "/{kind}", auth=None, status=201, response=Thing, summary="make a thing")
    def make(ctx: Any) -> Any:
        return payloads[ctx.params["kind"]]

    payloads["extra"] = {"made": "yes", "cost": money(1), "secret": "undocumented"}
    payloads["old_money"] = {"made": "yes", "cost": 2_500}
    app = flask.Flask("test_contract")
    with app.test_request_context("/good", method="POST"):
        assert router(flask.request).status_code == 201
    for kind in ("extra", "old_money"):
        with app.test_request_context(f"/{kind}", method="POST"):
            resp = router(flask.request)
        assert resp.status_code == 500 and resp.get_json()["error"]["code"] == "internal_error", kind
    monkeypatch.setenv("EARNPAY_ENV", "local")
    from shared.config import get_settings

    get_settings.cache_clear()
    with app.test_request_context("/extra", method="POST"):
        assert router(flask.request).status_code == 201  # production and the local server do not pay for the check


def test_every_route_documents_a_typed_answer() -> None:
    for router in ROUTERS:
        name = router.function
        # partner_callbacks answers in each partner's own protocol (a configured body such as "1"/"0" or
        # JSON), not our JSON shape: docs/partners.md documents it, tests/partners checks it
        if name == "partner_callbacks":
            continue
        for route in router.routes:
            assert route.response is not None, f"{route.method} /{name}{route.pattern} has no response model"
            assert route.response.model_fields, f"{route.method} /{name}{route.pattern}: an empty model documents nothing"
