"""Feature flags: deterministic percentage rollout, the admin service functions against the real
database (as the application role, like the admin function), and the per-instance cache."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from functions.flags import service as flags
from shared.db import Query, get_db
from shared.errors import ValidationFailed
from tests.helpers import Api

IDS = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"synthetic-user-{i}")) for i in range(10_000)]


def _key() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("percent", [1, 10, 25, 50, 90])
def test_rollout_share_is_close_to_the_percentage(percent: int) -> None:
    on = sum(flags.decide(True, percent, "new-checkout", uid) for uid in IDS)
    # binomial sd over 10,000 ids is at most 50 (0.5 %): 1.5 percentage points is 3 sd
    assert abs(on / len(IDS) * 100 - percent) <= 1.5, on


def test_rollout_is_stable_monotonic_and_independent_per_flag() -> None:
    assert [flags.bucket("new-checkout", u) for u in IDS[:200]] == [flags.bucket("new-checkout", u) for u in IDS[:200]]
    # pinned: every instance and every future release must put these users in the same buckets
    assert flags.bucket("new-checkout", "00000000-0000-0000-0000-000000000001") == 10
    assert flags.bucket("new-checkout", "00000000-0000-0000-0000-000000000002") == 26
    assert flags.bucket("dark-mode", "00000000-0000-0000-0000-000000000001") == 62
    at10 = {u for u in IDS if flags.decide(True, 10, "k", u)}
    at20 = {u for u in IDS if flags.decide(True, 20, "k", u)}
    assert at10 < at20  # raising the percentage only adds users
    other = {u for u in IDS if flags.decide(True, 10, "other-flag", u)}
    assert len(at10 & other) < len(at10) * 0.2  # a different flag picks (mostly) different users


def test_the_switch_and_the_extremes() -> None:
    uid = IDS[0]
    assert not flags.decide(False, 100, "k", uid)
    assert not flags.decide(True, 0, "k", uid)
    assert flags.decide(True, 100, "k", uid) and flags.decide(True, 100, "k", None)
    assert not flags.decide(True, 99, "k", None)  # anonymous callers only at 100 %


def test_set_flag_returns_before_and_after_and_list_shows_it(api: Api, owner_conn: Any) -> None:
    admin = api.staff(owner_conn, "admin")
    key = _key()
    with get_db().transaction() as conn:  # the application role, as the admin function connects
        first = flags.set_flag(conn, key, True, 10, "new checkout flow", admin.id)
    assert first["before"] is None
    assert first["after"]["enabled"] and first["after"]["rollout_percent"] == 10 and first["after"]["updated_by"] == admin.id
    with get_db().transaction() as conn:
        second = flags.set_flag(conn, key, True, 50, None, admin.id)
    assert second["before"]["rollout_percent"] == 10 and second["after"]["rollout_percent"] == 50
    assert second["after"]["description"] == "new checkout flow"  # None keeps the description
    with get_db().connection() as conn:
        listed = {f["key"]: f for f in flags.list_flags(conn)}
    assert listed[key]["rollout_percent"] == 50 and listed[key]["enabled"]


@pytest.mark.parametrize(
    ("key", "enabled", "percent", "description", "code"),
    [
        ("Bad Key", True, 10, None, "invalid_flag_key"),
        ("x", True, 10, None, "invalid_flag_key"),
        ("ok-key", True, 101, None, "invalid_rollout_percent"),
        ("ok-key", True, -1, None, "invalid_rollout_percent"),
        ("ok-key", True, True, None, "invalid_rollout_percent"),
        ("ok-key", "yes", 10, None, "invalid_flag"),
        ("ok-key", True, 10, "x" * 501, "invalid_flag"),
    ],
)
def test_set_flag_validates(key: str, enabled: Any, percent: Any, description: Any, code: str) -> None:
    with get_db().transaction() as conn, pytest.raises(ValidationFailed) as exc:
        flags.set_flag(conn, key, enabled, percent, description, None)
    assert exc.value.code == code


def test_the_application_role_cannot_delete_flags() -> None:
    from pg8000.exceptions import DatabaseError

    from shared.db import sqlstate

    with get_db().connection() as conn, pytest.raises(DatabaseError) as exc:
        conn.execute(Query("t_del_flags", "DELETE FROM feature_flags", prepared=False))
    assert sqlstate(exc.value) == "42501"


def test_cache_serves_for_its_ttl_then_reloads(owner_conn: Any) -> None:
    key = _key()
    with get_db().transaction() as conn:
        flags.set_flag(conn, key, True, 100, "cache test", None)
    now = [1000.0]
    cache = flags.FlagCache(ttl_s=30, clock=lambda: now[0])
    uid = IDS[1]
    with get_db().connection() as conn:
        assert flags.is_enabled(conn, key, uid, cache=cache) and cache.loads == 1
    # another instance switches it off (a write this instance did not make)
    owner_conn.execute(Query("t_flag_off", "UPDATE feature_flags SET enabled = false WHERE key = :k", prepared=False), k=key)
    now[0] += 29
    with get_db().connection() as conn:
        assert flags.is_enabled(conn, key, uid, cache=cache) and cache.loads == 1  # still cached: no query
        now[0] += 2
        assert not flags.is_enabled(conn, key, uid, cache=cache) and cache.loads == 2  # expired: reloaded
        assert not flags.is_enabled(conn, "no-such-flag", uid, cache=cache)  # unknown flags are off


def test_a_local_write_invalidates_this_instances_cache() -> None:
    key = _key()
    uid = IDS[2]
    with get_db().transaction() as conn:
        flags.set_flag(conn, key, True, 100, None, None)
    with get_db().connection() as conn:
        assert flags.is_enabled(conn, key, uid)
    with get_db().transaction() as conn:
        flags.set_flag(conn, key, False, 100, None, None)
    flags.invalidate_cache()  # as the admin route does after its commit
    with get_db().connection() as conn:
        assert not flags.is_enabled(conn, key, uid)
