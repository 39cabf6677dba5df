"""The heartbeat's per-user rate limit, counted in the user's active_streams row (no rate_limits write)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from shared.config import get_settings
from shared.db import Conn, Query
from tests.helpers import Api, User
from tests.progress.test_heartbeats import make_video

RATE_ROW = Query("t_rate_row", "SELECT hits FROM rate_limits WHERE bucket = 'user:' || CAST(:u AS text)", prepared=False)
STREAM_COUNT = Query("t_stream_count", "SELECT rl_hits FROM active_streams WHERE user_id = CAST(:u AS uuid)", prepared=False)


def _post(api: Api, user: User, video: str, position: float, seq: int) -> Any:
    return api.post(f"/progress/{video}", user=user, json={"position_seconds": position, "playing": True, "client_seq": seq})


def _early_in_a_minute() -> None:
    """Waits out the last seconds of a minute: the windows are fixed minutes, and a test must not straddle two."""
    left = 60 - time.time() % 60
    if left < 15:
        time.sleep(left + 0.5)


def test_heartbeats_count_in_their_stream_row_and_429_comes_before_the_input(
    api: Api, owner_conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, video = api.signup(), make_video(duration=100)
    rate_row_before = owner_conn.value(RATE_ROW, u=user.id)
    _early_in_a_minute()
    monkeypatch.setenv("USER_REQUESTS_PER_MINUTE", "3")
    get_settings.cache_clear()

    assert [_post(api, user, video, p, seq).status_code for p, seq in ((0, 1), (5, 2), (5, 2))] == [200, 200, 200]  # a stale one counts
    assert owner_conn.value(STREAM_COUNT, u=user.id) == 3
    assert owner_conn.value(RATE_ROW, u=user.id) == rate_row_before  # no rate_limits write for a heartbeat

    limited = _post(api, user, video, 10, 3)
    assert limited.status_code == 429 and 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.get_json()["error"]["code"] == "rate_limited"
    # Past the limit, what the heartbeat is about is not looked at: 429, not 404 or 422.
    assert _post(api, user, str(uuid.uuid4()), 1, 4).status_code == 429
    assert _post(api, user, video, 10_000, 5).status_code == 429
    assert owner_conn.value(STREAM_COUNT, u=user.id) == 3  # refused heartbeats write nothing

    # The other routes keep their own count in rate_limits, against the same limit.
    assert api.get("/auth/me", user=user).status_code == 200

    monkeypatch.setenv("USER_REQUESTS_PER_MINUTE", "1000")
    get_settings.cache_clear()
    assert _post(api, user, video, 10, 6).status_code == 200
    assert owner_conn.value(STREAM_COUNT, u=user.id) == 4


def test_a_new_minute_starts_a_new_count(api: Api, owner_conn: Conn, monkeypatch: pytest.MonkeyPatch) -> None:
    user, video = api.signup(), make_video(duration=100)
    monkeypatch.setenv("USER_REQUESTS_PER_MINUTE", "1")
    get_settings.cache_clear()
    assert _post(api, user, video, 0, 1).status_code == 200
    owner_conn.execute(
        Query(
            "t_last_minute",
            "UPDATE active_streams SET rl_window_start = rl_window_start - interval '1 minute' WHERE user_id = CAST(:u AS uuid)",
            prepared=False,
        ),
        u=user.id,
    )
    assert _post(api, user, video, 5, 2).status_code == 200
    assert owner_conn.value(STREAM_COUNT, u=user.id) == 1
