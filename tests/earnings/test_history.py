"""Earnings history: keyset pages with no duplicates or gaps, filters, cursors, isolation, index-only reads."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from typing import Any

import pytest

from functions.earnings import queries as eq
from functions.ledger import service as ledger
from shared.db import Conn, Query, get_db
from shared.models import money
from tests.helpers import Api, User, error_code

# Credits clear at once here: these tests are about other rules (clearing: tests/ledger/test_clearing.py).
pytestmark = pytest.mark.usefixtures("immediate_clearing")

TYPES = ["video_reward", "login_bonus", "streak_bonus", "referral_commission"]


def _seed(user_id: str, n: int) -> list[dict[str, Any]]:
    """n entries of rotating types; returns what was posted, oldest first."""
    out = []
    with get_db().transaction() as conn:
        for i in range(n):
            t = TYPES[i % len(TYPES)]
            posted = ledger.post(conn, user_id=user_id, type=t, amount=1_000 + i, idempotency_key=f"h-{i}", source="test")
            out.append({"seq": posted.seq, "type": t, "amount": 1_000 + i})
    return out


def _all_pages(api: Api, user: User, query: str = "", limit: int = 7) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(1000):
        path = f"/earnings/?limit={limit}{query}" + (f"&cursor={cursor}" if cursor else "")
        resp = api.get(path, user=user)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        page = resp.get_json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            return items
    raise AssertionError("pagination did not end")


def test_pages_cover_the_history_newest_first_without_duplicates_or_gaps(api: Api) -> None:
    user = api.signup()
    posted = _seed(user.id, 30)
    items = _all_pages(api, user)
    assert [i["seq"] for i in items] == list(range(30, 0, -1))
    first = items[0]
    assert first["amount"] == {"micros": 1_029, "formatted": "$0.001029", "currency": "USD"}
    assert first["balance_after"] == money(sum(p["amount"] for p in posted))
    assert first["type"] == posted[-1]["type"] and first["source"] == "test" and first["created_at"].endswith("Z")
    # a page that ends exactly at the last entry says so
    assert api.get("/earnings/?limit=30", user=user).get_json()["next_cursor"] is None
    # entries added between pages appear on the next first page, never inside a walk already started
    page1 = api.get("/earnings/?limit=10", user=user).get_json()
    _seed_more(user.id, 1)
    page2 = api.get(f"/earnings/?limit=10&cursor={page1['next_cursor']}", user=user).get_json()
    assert [i["seq"] for i in page2["items"]] == list(range(20, 10, -1))


def _seed_more(user_id: str, n: int) -> None:
    with get_db().transaction() as conn:
        for _ in range(n):
            ledger.post(conn, user_id=user_id, type="adjustment", amount=5, idempotency_key=f"more-{uuid.uuid4().hex}", source="test")


def test_type_and_date_filters(api: Api) -> None:
    user = api.signup()
    posted = _seed(user.id, 20)
    rewards = _all_pages(api, user, "&type=video_reward", limit=2)
    assert [i["seq"] for i in rewards] == [p["seq"] for p in reversed(posted) if p["type"] == "video_reward"]
    today = dt.datetime.now(dt.UTC).date()
    assert len(_all_pages(api, user, f"&from={today}&to={today}")) == 20
    assert _all_pages(api, user, f"&from={today + dt.timedelta(days=1)}") == []
    assert _all_pages(api, user, f"&to={today - dt.timedelta(days=1)}") == []
    now = dt.datetime.now(dt.UTC)
    hour_ago = (now - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(_all_pages(api, user, f"&from={hour_ago}&type=login_bonus")) == 5
    future = (now + dt.timedelta(hours=1)).isoformat().replace("+00:00", "%2B00:00")
    assert _all_pages(api, user, f"&from={future}") == []
    for bad in ("&from=yesterday", "&to=2025-13-01", "&from=2025-01-01T00:00:00", "&type=free_money", "&limit=0", "&limit=201", "&page=2"):
        resp = api.get(f"/earnings/?limit=5{bad}", user=user)
        assert resp.status_code == 422, (bad, resp.get_data(as_text=True))


def _b64(obj: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_bad_cursors_are_422_not_500(api: Api) -> None:
    user = api.signup()
    _seed(user.id, 3)
    progress_cursor = _b64({"v": 1, "k": "progress", "t": 1, "id": str(uuid.uuid4())})
    for bad in (
        "garbage!",
        "bm90IGpzb24",  # "not json"
        _b64([1, 2]),
        _b64({"v": 1, "k": "earnings"}),
        _b64({"v": 1, "k": "earnings", "seq": "5"}),
        _b64({"v": 1, "k": "earnings", "seq": True}),
        _b64({"v": 1, "k": "earnings", "seq": 1.5}),
        _b64({"v": 2, "k": "earnings", "seq": 5}),
        _b64({"v": 1, "k": "earnings", "seq": 5, "extra": 1}),
        progress_cursor,
        "A" * 600,
    ):
        resp = api.get(f"/earnings/?cursor={bad}", user=user)
        assert resp.status_code == 422, (bad, resp.status_code)
        assert error_code(resp) in ("invalid_cursor", "validation_failed")
    huge = _b64({"v": 1, "k": "earnings", "seq": 2**70})
    resp = api.get(f"/earnings/?cursor={huge}", user=user)
    assert resp.status_code == 200 and resp.get_json()["items"] == []


def test_users_only_ever_see_their_own_entries(api: Api) -> None:
    alice, bob = api.signup(), api.signup()
    _seed(alice.id, 12)
    _seed(bob.id, 2)
    bob_items = _all_pages(api, bob, limit=50)
    assert [i["seq"] for i in bob_items] == [2, 1]
    alice_page = api.get("/earnings/?limit=5", user=alice).get_json()
    # Alice's cursor only positions Bob's own list
    bob_with_alice_cursor = api.get(f"/earnings/?limit=50&cursor={alice_page['next_cursor']}", user=bob).get_json()
    assert [i["amount"]["micros"] for i in bob_with_alice_cursor["items"]] == [1_001, 1_000]
    assert api.get("/earnings/").status_code == 401


def test_history_page_reads_only_the_covering_index(api: Api, owner_conn: Conn) -> None:
    user = api.signup()
    owner_conn.value(
        Query(
            "t_bulk_post",
            """SELECT count(*) FROM generate_series(1, 400) g,
                      LATERAL ledger_post(CAST(:u AS uuid), 'video_reward', 1000 + g, 'bulk-' || g, 'test') p""",
            prepared=False,
        ),
        u=user.id,
    )
    owner_conn.script("VACUUM ANALYZE earnings")
    children = {
        r[0]
        for r in owner_conn.rows(
            Query(
                "t_child_indexes",
                """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                    WHERE i.inhparent = 'idx_earnings_user_seq'::regclass""",
                prepared=False,
            )
        )
    }
    assert len(children) == 16
    explain = Query("t_explain_history", "EXPLAIN " + eq.HISTORY_PAGE.sql, prepared=False)
    # custom plans (what the first executions get) and the generic plan a prepared statement settles on
    for mode in ("force_custom_plan", "force_generic_plan"):
        owner_conn.script(f"SET plan_cache_mode = {mode}")
        for params in (
            {"before_seq": 2**63 - 1, "type": None, "from_ts": None, "to_ts": None},
            {"before_seq": 60, "type": None, "from_ts": None, "to_ts": None},
            {"before_seq": 300, "type": "video_reward", "from_ts": dt.datetime(2020, 1, 1, tzinfo=dt.UTC), "to_ts": None},
        ):
            plan = "\n".join(r[0] for r in owner_conn.rows(explain, user_id=user.id, limit=51, **params))
            # pending credits of the page: one primary-key probe per row (migration 0060)
            scans = [line for line in plan.splitlines() if "Scan" in line and "pending_credits_pkey" not in line]
            probes = [line for line in plan.splitlines() if "pending_credits" in line and "Scan" in line]
            assert probes and all("Index Scan using pending_credits_pkey" in line for line in probes), plan
            assert scans and all("Index Only Scan using " in line for line in scans), plan
            assert all(line.split("Index Only Scan using ")[1].split()[0] in children for line in scans), plan
            assert "Sort" not in plan, plan
    owner_conn.script("RESET plan_cache_mode")
