"""Watch progress: what a heartbeat may credit, measured on the database clock.

Time passes without sleeping: a test ages ``last_heartbeat_at`` as the owner ("pretend 10 s
passed"), exactly what the function measures elapsed time from.
"""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import pytest
from werkzeug.test import Client

from functions.videos import service as videos
from shared.config import get_settings
from shared.db import Conn, Query, get_db
from tests.helpers import Api, User, error_code

# Credits clear at once here: these tests are about other rules (clearing: tests/ledger/test_clearing.py).
pytestmark = pytest.mark.usefixtures("immediate_clearing")

AGE = Query(
    "t_age_progress",
    """UPDATE video_progress SET last_heartbeat_at = last_heartbeat_at - make_interval(secs => :seconds),
                                 stream_started_at = stream_started_at - make_interval(secs => :seconds)
        WHERE user_id = CAST(:user_id AS uuid) AND video_id = CAST(:video_id AS uuid)""",
    prepared=False,
)
PROGRESS_ROW = Query(
    "t_progress_row",
    "SELECT * FROM video_progress WHERE user_id = CAST(:user_id AS uuid) AND video_id = CAST(:video_id AS uuid)",
    prepared=False,
)
REWARDS = Query(
    "t_rewards",
    """SELECT id, amount, idempotency_key FROM earnings
        WHERE user_id = CAST(:user_id AS uuid) AND type = 'video_reward' AND reference = :video_id""",
    prepared=False,
)
BALANCE = Query("t_balance", "SELECT available FROM balances WHERE user_id = CAST(:user_id AS uuid)", prepared=False)


def make_video(duration: int = 100, reward: int = 10_000, pct: int = 90) -> str:
    with get_db().transaction() as conn:
        return str(
            videos.create_video(conn, title="Progress test", duration_seconds=duration, reward_micros=reward, required_watch_pct=pct)["id"]
        )


def hb(api: Api, user: User, video: str, position: float, seq: int, *, playing: bool = True, session: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"position_seconds": position, "playing": playing, "client_seq": seq}
    if session:
        body["session_id"] = session
    resp = api.post(f"/progress/{video}", user=user, json=body)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    data: dict[str, Any] = resp.get_json()
    return data


def age(conn: Any, user: User, video: str, seconds: float) -> None:
    assert conn.execute(AGE, user_id=user.id, video_id=video, seconds=float(seconds)) == 1


def test_first_heartbeat_is_a_baseline_and_playing_time_is_credited(api: Api, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video()
    first = hb(api, user, video, 0, 1)
    assert first["status"] == "started" and first["credited_seconds"] == 0 and first["accepted"]
    age(owner_conn, user, video, 10)
    second = hb(api, user, video, 10, 2)
    assert second["status"] == "credited" and second["credited_now_seconds"] == 10 and second["credited_seconds"] == 10
    assert second["required_seconds"] == 90 and second["duration_seconds"] == 100 and not second["completed"]


def test_forward_seek_credits_nothing_beyond_wall_clock(api: Api, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video()
    hb(api, user, video, 0, 1)
    age(owner_conn, user, video, 10)
    jumped = hb(api, user, video, 80, 2)
    # 10 s passed: at most the stream's 10 s plus the 2 s tolerance, never the 80 s jump
    assert 10 <= jumped["credited_now_seconds"] <= 12.1 and jumped["position_seconds"] == 80
    # no time passed at all: a jump credits (almost) nothing
    again = hb(api, user, video, 95, 3)
    assert again["credited_now_seconds"] < 0.5
    # time passed while paused cannot be spent on one seek: one interval moves at most 1.5x its time + 2 s
    user2, video2 = api.signup(), make_video(duration=600)
    hb(api, user2, video2, 0, 1)
    age(owner_conn, user2, video2, 300)  # the stream is 300 s old ...
    hb(api, user2, video2, 0, 2, playing=False)
    age(owner_conn, user2, video2, 10)  # ... and the last interval 10 s
    resumed = hb(api, user2, video2, 0, 3)
    assert resumed["credited_now_seconds"] == 0  # after a pause: nothing was playing
    age(owner_conn, user2, video2, 10)
    assert 15 <= hb(api, user2, video2, 500, 4)["credited_now_seconds"] <= 17.1


def test_replayed_and_out_of_order_heartbeats_credit_nothing(api: Api, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video()
    hb(api, user, video, 0, 5)
    age(owner_conn, user, video, 10)
    assert hb(api, user, video, 10, 6)["credited_seconds"] == 10
    age(owner_conn, user, video, 10)
    for seq in (6, 5, 1):  # replay of the last, then older ones
        stale = hb(api, user, video, 20, seq)
        assert stale["status"] == "stale" and not stale["accepted"] and stale["credited_now_seconds"] == 0
        assert stale["credited_seconds"] == 10 and stale["position_seconds"] == 10
    row = owner_conn.one(PROGRESS_ROW, user_id=user.id, video_id=video)
    assert row is not None and row["last_client_seq"] == 6 and row["heartbeats"] == 2


def test_seeking_back_is_allowed_and_credits_nothing_for_the_jump(api: Api, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video()
    hb(api, user, video, 40, 1)
    age(owner_conn, user, video, 10)
    back = hb(api, user, video, 20, 2)
    assert back["accepted"] and back["credited_now_seconds"] == 0 and back["position_seconds"] == 20
    age(owner_conn, user, video, 10)
    assert hb(api, user, video, 30, 3)["credited_now_seconds"] == 10


def test_paused_time_is_not_credited(api: Api, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video()
    hb(api, user, video, 10, 1, playing=False)
    age(owner_conn, user, video, 10)
    resumed = hb(api, user, video, 20, 2, playing=True)
    assert resumed["credited_now_seconds"] == 0
    age(owner_conn, user, video, 10)
    assert hb(api, user, video, 30, 3)["credited_now_seconds"] == 10


def test_one_stream_at_a_time(api: Api, owner_conn: Conn) -> None:
    user, a, b = api.signup(), make_video(), make_video()
    hb(api, user, a, 0, 1)
    hb(api, user, b, 0, 1)
    # two players interleaving: each heartbeat follows the other stream's, so neither accrues
    for seq in range(2, 6):
        age(owner_conn, user, a, 10)
        age(owner_conn, user, b, 10)
        ra = hb(api, user, a, 10 * (seq - 1), seq)
        rb = hb(api, user, b, 10 * (seq - 1), seq)
        assert ra["credited_now_seconds"] == 0 and ra["status"] == "stream_started"
        assert rb["credited_now_seconds"] == 0
    # switching for real: the first heartbeat on the new stream is a baseline, the next ones accrue
    age(owner_conn, user, a, 10)
    assert hb(api, user, a, 50, 6)["credited_now_seconds"] == 0
    age(owner_conn, user, a, 10)
    assert hb(api, user, a, 60, 7)["credited_now_seconds"] == 10


def test_a_new_session_restarts_the_sequence_as_a_new_stream(api: Api, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video()
    s1, s2 = str(uuid.uuid4()), str(uuid.uuid4())
    hb(api, user, video, 0, 100, session=s1)
    age(owner_conn, user, video, 10)
    assert hb(api, user, video, 10, 101, session=s1)["credited_now_seconds"] == 10
    age(owner_conn, user, video, 10)
    fresh = hb(api, user, video, 10, 1, session=s2)  # another device starts counting at 1
    assert fresh["accepted"] and fresh["status"] == "stream_started" and fresh["credited_now_seconds"] == 0
    age(owner_conn, user, video, 10)
    assert hb(api, user, video, 20, 2, session=s2)["credited_now_seconds"] == 10
    # the old session's heartbeats now take the stream back but never credit on arrival
    age(owner_conn, user, video, 10)
    assert hb(api, user, video, 30, 102, session=s1)["credited_now_seconds"] == 0


def _watch_to_threshold(api: Api, owner_conn: Conn, user: User, video: str, *, step: int = 10, until: int, seq: int = 1) -> dict[str, Any]:
    """Plays from 0 in ``step``-second heartbeats until the video completes (``until`` is its threshold)."""
    last = hb(api, user, video, 0, seq)
    pos = 0
    while not last["completed"]:
        assert pos <= until + step, last
        seq, pos = seq + 1, pos + step
        age(owner_conn, user, video, step)
        last = hb(api, user, video, pos, seq)
    return last


def test_completion_credits_the_reward_once_with_the_new_balance(api: Api, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video(duration=60, reward=7_777, pct=50)
    done = _watch_to_threshold(api, owner_conn, user, video, until=30)
    assert done["status"] == "completed"
    assert done["completed"]
    assert done["credited_seconds"] >= 30
    assert done["reward"]["credited"] == {"micros": 7_777, "formatted": "$0.007777", "currency": "USD"}
    assert done["reward"]["withheld"]["micros"] == 0
    assert done["reward"]["entry_id"]
    balance = owner_conn.value(BALANCE, user_id=user.id)
    assert done["balance"]["available"]["micros"] == balance
    assert balance >= 7_777
    # more watching, seeking back and re-watching: never a second reward
    age(owner_conn, user, video, 10)
    later = hb(api, user, video, 40, 100)
    assert later["completed"]
    assert later["balance"] is None
    assert later["credited_now_seconds"] == 0
    hb(api, user, video, 0, 101)
    age(owner_conn, user, video, 60)
    hb(api, user, video, 60, 102)
    rewards = owner_conn.all(REWARDS, user_id=user.id, video_id=video)
    assert len(rewards) == 1
    assert rewards[0]["amount"] == 7_777
    assert rewards[0]["idempotency_key"] == f"video_reward:{user.id}:{video}"
    row = owner_conn.one(PROGRESS_ROW, user_id=user.id, video_id=video)
    assert row is not None
    assert row["reward_entry_id"] == rewards[0]["id"]
    assert row["completed_at"] is not None
    events = owner_conn.all(
        Query("t_outbox", "SELECT payload FROM outbox WHERE key = :key", prepared=False), key=f"video_completed:{user.id}:{video}"
    )
    assert len(events) == 1
    payload = events[0]["payload"]
    payload = json.loads(payload) if isinstance(payload, str) else payload
    assert payload["reward"]["micros"] == 7_777
    assert payload["video_id"] == video
    progress = api.get(f"/progress/{video}", user=user).get_json()
    assert progress["completed"]
    assert progress["reward"]["credited"]["micros"] == 7_777
    stats = api.get("/earnings/stats", user=user).get_json()
    assert stats["available"]["micros"] == balance
    assert stats["periods"]["today"]["by_type"]["video_reward"]["micros"] == 7_777


def _parallel(apps: object, user: User, video: str, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    errors: list[str] = []
    barrier = threading.Barrier(len(bodies))

    def run(body: dict[str, Any]) -> None:
        client = Client(apps)  # type: ignore[arg-type]
        barrier.wait()
        resp = client.post(f"/progress/{video}", json=body, headers=user.headers)
        if resp.status_code != 200:
            errors.append(resp.get_data(as_text=True))
        else:
            results.append(resp.get_json())

    threads = [threading.Thread(target=run, args=(b,)) for b in bodies]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_parallel_heartbeats_credit_at_most_the_elapsed_time(api: Api, apps: object, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video(duration=600, reward=5_000)
    hb(api, user, video, 0, 1)
    age(owner_conn, user, video, 10)
    results = _parallel(apps, user, video, [{"position_seconds": 10, "playing": True, "client_seq": s} for s in range(2, 10)])
    credited = sum(r["credited_now_seconds"] for r in results)
    assert 10 <= credited <= 11.1  # once for the 10 s; the rest arrive "no time later" or stale
    row = owner_conn.one(PROGRESS_ROW, user_id=user.id, video_id=video)
    assert row is not None and float(row["credited_seconds"]) == credited


@pytest.mark.parametrize("round_", range(3))
def test_parallel_completion_attempts_give_exactly_one_reward(api: Api, apps: object, owner_conn: Conn, round_: int) -> None:
    user, video = api.signup(), make_video(duration=20, reward=4_321, pct=50)
    hb(api, user, video, 0, 1)
    age(owner_conn, user, video, 15)
    bodies = [{"position_seconds": 15, "playing": True, "client_seq": s} for s in range(2, 10)]
    bodies += [{"position_seconds": 15, "playing": True, "client_seq": 9}] * 4  # the same heartbeat, retried
    results = _parallel(apps, user, video, bodies)
    assert sum(1 for r in results if r["status"] == "completed") == 1
    assert all(r["completed"] for r in results if r["accepted"])
    rewards = owner_conn.all(REWARDS, user_id=user.id, video_id=video)
    assert [r["amount"] for r in rewards] == [4_321]
    # the reward and the day's bonus for its first verified watching, each once
    assert owner_conn.value(BALANCE, user_id=user.id) == 4_321 + _day_one_bonus()


def _day_one_bonus() -> int:
    """The daily bonus of a first day of verified watching (the login bonus; no streak on day one)."""
    from functions.earnings import bonuses

    with get_db().connection() as conn:
        cfg = bonuses.config(conn)
    return int(cfg["login_bonus_micros"]) + int(cfg["streak_bonus_micros"][0])


def test_daily_cap_withholds_and_records_the_rest(api: Api, owner_conn: Conn) -> None:
    cap = get_settings().daily_earning_cap_micros
    reward = cap * 3 // 5
    user = api.signup()
    first, second, third = (make_video(duration=20, reward=reward, pct=50) for _ in range(3))
    r1 = _watch_to_threshold(api, owner_conn, user, first, until=10)
    assert r1["reward"]["credited"]["micros"] == reward
    assert r1["reward"]["withheld"]["micros"] == 0
    r2 = _watch_to_threshold(api, owner_conn, user, second, until=10)
    assert r2["reward"]["credited"]["micros"] == cap - reward
    assert r2["reward"]["withheld"]["micros"] == 2 * reward - cap
    assert r2["reward"]["withheld_reason"] == "daily_cap"
    r3 = _watch_to_threshold(api, owner_conn, user, third, until=10)
    assert r3["completed"]
    assert r3["reward"]["credited"]["micros"] == 0
    assert r3["reward"]["withheld"]["micros"] == reward
    assert r3["reward"]["entry_id"] is None
    assert r3["balance"]["available"]["micros"] == cap + _day_one_bonus()
    assert r1["daily_bonus"]["total"]["micros"] == _day_one_bonus()
    assert r2["daily_bonus"] is None
    assert r3["daily_bonus"] is None
    withheld = owner_conn.all(
        Query(
            "t_withheld",
            "SELECT video_id::text AS video_id, withheld_micros, reason, status, cap_micros FROM withheld_rewards "
            "WHERE user_id = CAST(:u AS uuid) ORDER BY id",
            prepared=False,
        ),
        u=user.id,
    )
    assert [(w["video_id"], w["withheld_micros"]) for w in withheld] == [(second, 2 * reward - cap), (third, reward)]
    assert all(w["reason"] == "daily_cap" and w["status"] == "withheld" and w["cap_micros"] == cap for w in withheld)
    day = owner_conn.one(Query("t_day", "SELECT * FROM daily_video_earnings WHERE user_id = CAST(:u AS uuid)", prepared=False), u=user.id)
    assert day is not None
    assert day["credited_micros"] == cap
    assert day["completions"] == 3
    assert owner_conn.value(BALANCE, user_id=user.id) == cap + _day_one_bonus()


@pytest.mark.parametrize(
    "body",
    [
        {"position_seconds": -1, "playing": True, "client_seq": 1},
        {"position_seconds": "10", "playing": True, "client_seq": 1},
        {"position_seconds": 1e300, "playing": True, "client_seq": 1},
        {"position_seconds": 10, "playing": "yes", "client_seq": 1},
        {"position_seconds": 10, "playing": True, "client_seq": -1},
        {"position_seconds": 10, "playing": True, "client_seq": 1.5},
        {"position_seconds": 10, "playing": True, "client_seq": 2**60},
        {"position_seconds": 10, "playing": True, "client_seq": "1"},
        {"position_seconds": 10, "playing": True},
        {"position_seconds": 10, "playing": True, "client_seq": 1, "credited_seconds": 99},
        {"position_seconds": 10, "playing": True, "client_seq": 1, "session_id": "not-a-uuid"},
        {"position_seconds": 101, "playing": True, "client_seq": 1},  # beyond the 100 s video
    ],
)
def test_bad_heartbeats_are_4xx_and_write_nothing(api: Api, owner_conn: Conn, body: dict[str, Any]) -> None:
    user, video = api.signup(), make_video()
    resp = api.post(f"/progress/{video}", user=user, json=body)
    assert resp.status_code == 422, resp.get_data(as_text=True)
    assert owner_conn.one(PROGRESS_ROW, user_id=user.id, video_id=video) is None


def test_non_finite_and_malformed_bodies_and_ids(api: Api, owner_conn: Conn) -> None:
    user, video = api.signup(), make_video()
    for raw in (
        b'{"position_seconds": NaN, "playing": true, "client_seq": 1}',
        b'{"position_seconds": Infinity, "playing": true, "client_seq": 1}',
        b'{"position_seconds": 1e400, "playing": true, "client_seq": 1}',
    ):  # not JSON (NaN, Infinity) or beyond a float's range: refused by the parser, before the model
        resp = api.post(f"/progress/{video}", user=user, data=raw, headers={"Content-Type": "application/json"})
        assert resp.status_code == 400 and error_code(resp) in ("malformed_json", "number_out_of_range"), resp.get_data(as_text=True)
    assert api.post(f"/progress/{video}", user=user, data=b"{nope", headers={"Content-Type": "application/json"}).status_code == 400
    assert api.post(f"/progress/{video}", user=user, json=[1, 2]).status_code == 422
    assert owner_conn.one(PROGRESS_ROW, user_id=user.id, video_id=video) is None
    ok = {"position_seconds": 1, "playing": True, "client_seq": 1}
    assert error_code(api.post("/progress/not-a-uuid", user=user, json=ok)) == "invalid_video_id"
    missing = api.post(f"/progress/{uuid.uuid4()}", user=user, json=ok)
    assert missing.status_code == 404 and error_code(missing) == "video_not_found"
    assert api.post(f"/progress/{video}", json=ok).status_code == 401


def test_progress_of_one_video_and_the_paginated_list(api: Api, owner_conn: Conn) -> None:
    user, other = api.signup(), api.signup()
    vids = [make_video(duration=20, reward=1_000, pct=50) for _ in range(5)]
    unseen = make_video()
    for v in vids:
        hb(api, user, v, 0, 1)
    _watch_to_threshold(api, owner_conn, user, vids[0], until=10, seq=2)
    hb(api, other, vids[1], 3, 1)
    not_started = api.get(f"/progress/{unseen}", user=user).get_json()
    assert not_started["started"] is False
    assert not_started["credited_seconds"] == 0
    seen: list[str] = []
    cursor = None
    while True:
        path = "/progress/?limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(path, user=user).get_json()
        assert len(page["items"]) <= 2
        seen += [i["video_id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert sorted(seen) == sorted(vids)
    assert len(seen) == len(set(seen))
    assert seen == list(reversed(vids))  # most recently started first
    done = api.get("/progress/?completed=true", user=user).get_json()["items"]
    assert [i["video_id"] for i in done] == [vids[0]]
    assert done[0]["reward"]["credited"]["micros"] == 1_000
    assert len(api.get("/progress/?completed=false", user=user).get_json()["items"]) == 4
    theirs = api.get("/progress/", user=other).get_json()["items"]
    assert [i["video_id"] for i in theirs] == [vids[1]]
    assert theirs[0]["position_seconds"] == 3
    mine = api.get(f"/progress/{vids[1]}", user=user).get_json()
    assert mine["position_seconds"] == 0
    for bad in ("nope", "eyJ2IjoxfQ", "%00", "x" * 600):
        resp = api.get(f"/progress/?cursor={bad}", user=user)
        assert resp.status_code == 422, (bad, resp.get_data(as_text=True))
    assert api.get("/progress/?limit=0", user=user).status_code == 422
    assert api.get("/progress/?limit=201", user=user).status_code == 422
    assert api.get("/progress/?sort=asc", user=user).status_code == 422
