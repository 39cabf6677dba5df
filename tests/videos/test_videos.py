"""The video catalogue: listing, ETag revalidation, one video, creation rules, the demo seed."""

from __future__ import annotations

import uuid

import pytest
from pg8000.exceptions import DatabaseError

from functions.videos import service
from functions.videos.demo import DEMO_VIDEOS, seed_demo
from shared.db import Query, get_db
from tests.helpers import Api, error_code


def _create(**kw: object) -> dict[str, object]:
    fields: dict[str, object] = {"title": "A test video", "duration_seconds": 120, "reward_micros": 12_345}
    fields.update(kw)
    with get_db().transaction() as conn:
        return service.create_video(conn, **fields)  # type: ignore[arg-type]


def test_catalogue_lists_active_videos_with_money_as_micros_and_string(api: Api) -> None:
    user = api.signup()
    video = _create(title="Catalogue video", reward_micros=2_500, required_watch_pct=75)
    hidden = _create(title="Hidden video", active=False)
    resp = api.get("/videos/", user=user)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    items = {v["id"]: v for v in resp.get_json()["items"]}
    assert hidden["id"] not in items
    listed = items[video["id"]]
    assert listed["reward"] == {"micros": 2_500, "formatted": "$0.0025", "currency": "USD"}
    assert listed["duration_seconds"] == 120 and listed["required_watch_pct"] == 75 and listed["required_seconds"] == 90
    assert listed["active"] is True
    assert resp.get_json()["next_cursor"] is None


def test_catalogue_etag_revalidates_with_304_and_changes_with_the_catalogue(api: Api) -> None:
    user = api.signup()
    first = api.get("/videos/", user=user)
    etag = first.headers["ETag"]
    assert etag.startswith('"') and "private" in first.headers["Cache-Control"]
    again = api.get("/videos/", user=user, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b"" and again.headers["ETag"] == etag
    weak = api.get("/videos/", user=user, headers={"If-None-Match": f'"nope", W/{etag}'})
    assert weak.status_code == 304
    other = api.get("/videos/", user=user, headers={"If-None-Match": '"something-else"'})
    assert other.status_code == 200 and other.get_json()["items"]
    _create(title="A new video changes the ETag")
    changed = api.get("/videos/", user=user, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_catalogue_needs_a_session(api: Api) -> None:
    assert api.get("/videos/").status_code == 401
    assert api.get(f"/videos/{uuid.uuid4()}").status_code == 401


def test_one_video_404_for_unknown_or_inactive_and_422_for_malformed_ids(api: Api) -> None:
    user = api.signup()
    video = _create(title="One video")
    hidden = _create(title="Inactive", active=False)
    ok = api.get(f"/videos/{video['id']}", user=user)
    assert ok.status_code == 200 and ok.get_json()["title"] == "One video"
    assert ok.get_json()["reward"] == {"micros": 12_345, "formatted": "$0.012345", "currency": "USD"}
    for missing in (str(uuid.uuid4()), hidden["id"]):
        resp = api.get(f"/videos/{missing}", user=user)
        assert resp.status_code == 404 and error_code(resp) == "video_not_found"
    for bad in ("abc", "1", "00000000-0000-0000-0000-00000000000g", str(uuid.uuid4()).replace("-", ""), "%00", "x" * 300):
        resp = api.get(f"/videos/{bad}", user=user)
        assert resp.status_code == 422, (bad, resp.status_code)


@pytest.mark.parametrize(
    "bad",
    [
        {"duration_seconds": 0},
        {"duration_seconds": -5},
        {"duration_seconds": 86_401},
        {"reward_micros": -1},
        {"reward_micros": 1.5},
        {"required_watch_pct": 0},
        {"required_watch_pct": 101},
        {"title": ""},
        {"media_url": "http://insecure.example.com/v.mp4"},
        {"slug": "Not A Slug"},
    ],
)
def test_create_video_refuses_invalid_fields(bad: dict[str, object]) -> None:
    with pytest.raises(Exception) as exc:
        _create(**bad)
    assert getattr(exc.value, "code", "") == "invalid_video"


def test_schema_checks_hold_even_past_the_service(owner_conn: object) -> None:
    insert = Query(
        "t_bad_video",
        "INSERT INTO videos (title, duration_seconds, reward_micros, required_watch_pct) VALUES ('x', :d, :r, :p)",
        prepared=False,
    )
    for d, r, p in ((0, 1, 90), (10, -1, 90), (10, 1, 0), (10, 1, 101)):
        with pytest.raises(DatabaseError):
            owner_conn.execute(insert, d=d, r=r, p=p)  # type: ignore[attr-defined]


def test_slug_is_unique_and_demo_seed_is_idempotent() -> None:
    slug = f"t-{uuid.uuid4().hex[:12]}"
    _create(slug=slug)
    with pytest.raises(Exception) as exc:
        _create(slug=slug)
    assert getattr(exc.value, "code", "") == "video_slug_taken"
    with get_db().transaction() as conn:
        assert seed_demo(conn) == len(DEMO_VIDEOS)
    with get_db().transaction() as conn:
        assert seed_demo(conn) == len(DEMO_VIDEOS)
    with get_db().connection() as conn:
        n = conn.value(Query("t_demo_count", "SELECT count(*) FROM videos WHERE slug LIKE 'demo-%'", prepared=False))
    assert n == len(DEMO_VIDEOS)
    for video in DEMO_VIDEOS:
        assert 30 <= int(str(video["duration_seconds"])) <= 600
        assert 2_500 <= int(str(video["reward_micros"])) <= 50_000
