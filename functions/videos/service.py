"""The video catalogue: reads (cached per instance, revalidated by ETag) and creation for staff."""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from functions.ledger.service import money
from functions.videos import queries as q
from functions.videos.models import VideoCreate
from shared import error_codes as codes
from shared.db import Conn
from shared.errors import Conflict, NotFound, ValidationFailed
from shared.render import dumps

# The product document: each instance caches the catalogue for 15 minutes. Each request compares the
# cached copy's version with cache_versions (one primary-key read instead of the catalogue query and
# its serialisation), so a change through any instance is seen by every instance at once.
CATALOGUE_TTL_S = 15 * 60
CATALOGUE_MAX_VIDEOS = 1000


def required_seconds(duration_seconds: int, required_watch_pct: int) -> int:
    """Credited watch time that completes a video: ceil(duration * pct / 100), in whole seconds."""
    return -(-duration_seconds * required_watch_pct // 100)


def present(row: dict[str, Any]) -> dict[str, Any]:
    """A video as clients see it (the reward in the one money shape)."""
    return {
        "id": row["id"],
        "title": row["title"],
        "description": row["description"],
        "media_url": row["media_url"],
        "thumbnail_url": row["thumbnail_url"],
        "duration_seconds": row["duration_seconds"],
        "reward": money(row["reward_micros"]),
        "required_watch_pct": row["required_watch_pct"],
        "required_seconds": required_seconds(row["duration_seconds"], row["required_watch_pct"]),
        "active": row["active"],
    }


@dataclass(frozen=True)
class Catalogue:
    """The serialised catalogue and its validator."""

    body: str
    etag: str
    count: int
    expires_at: float
    version: int = 0


_lock = threading.Lock()
_cached: Catalogue | None = None


def invalidate_catalogue() -> None:
    """Forgets this instance's cached catalogue (after a change)."""
    global _cached
    with _lock:
        _cached = None


def catalogue(conn: Conn) -> Catalogue:
    """The active catalogue as JSON text with a strong ETag, from the instance cache when fresh."""
    global _cached
    now = time.monotonic()
    current = _cached
    version = int(conn.value(q.CATALOGUE_VERSION) or 0)
    if current is not None and current.expires_at > now and current.version == version:
        return current
    # The version was read before the list: a change in between pairs a newer list with the older
    # version (refetched once more next time), never an older list with the newer version.
    rows = conn.all(q.CATALOGUE, max_rows=CATALOGUE_MAX_VIDEOS)
    body = dumps({"items": [present(r) for r in rows], "next_cursor": None})
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:32] + '"'
    fresh = Catalogue(body=body, etag=etag, count=len(rows), expires_at=now + CATALOGUE_TTL_S, version=version)
    with _lock:
        _cached = fresh
    return fresh


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """True when an If-None-Match header names ``etag`` (weak comparison, lists and ``*`` allowed)."""
    if not if_none_match:
        return False
    candidates = [c.strip() for c in if_none_match.split(",")]
    return any(c == "*" or c.removeprefix("W/") == etag for c in candidates)


def get_video(conn: Conn, video_id: str) -> dict[str, Any]:
    """One active video; 404 for unknown or inactive ones."""
    row = conn.one(q.ACTIVE_VIDEO, id=video_id)
    if row is None:
        raise NotFound("no such video", code=codes.VIDEO_NOT_FOUND)
    return present(row)


def create_video(
    conn: Conn,
    *,
    title: str,
    duration_seconds: int,
    reward_micros: int,
    required_watch_pct: int = 90,
    description: str = "",
    media_url: str | None = None,
    thumbnail_url: str | None = None,
    active: bool = True,
    slug: str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Creates a video (staff, through the admin function); 422 for invalid fields, 409 for a taken slug."""
    try:
        data = VideoCreate.model_validate(
            {
                "title": title,
                "duration_seconds": duration_seconds,
                "reward_micros": reward_micros,
                "required_watch_pct": required_watch_pct,
                "description": description,
                "media_url": media_url,
                "thumbnail_url": thumbnail_url,
                "active": active,
                "slug": slug,
            }
        )
    except ValidationError as exc:
        from shared.http import validation_details

        raise ValidationFailed("the video is invalid", code=codes.INVALID_VIDEO, details=validation_details(exc)) from exc
    row = conn.one(q.INSERT, **data.model_dump(), created_by=created_by)
    if row is None:
        raise Conflict("a video with this slug exists already", code=codes.VIDEO_SLUG_TAKEN)
    invalidate_catalogue()
    return present(row)


def ensure_video(conn: Conn, *, slug: str, **fields: Any) -> tuple[dict[str, Any], bool]:
    """The video with ``slug``, created from ``fields`` when missing; returns (video, created)."""
    existing = conn.one(q.BY_SLUG, slug=slug)
    if existing is not None:
        return present(existing), False
    try:
        return create_video(conn, slug=slug, **fields), True
    except Conflict:  # created concurrently: fine, it exists now
        row = conn.one(q.BY_SLUG, slug=slug)
        assert row is not None
        return present(row), False


STAFF_CATALOGUE_ROWS = 1000


def all_videos(conn: Conn) -> list[dict[str, Any]]:
    """Every video, inactive ones too, newest first (the staff console's catalogue)."""
    return [present(r) for r in conn.all(q.ALL_VIDEOS, max_rows=STAFF_CATALOGUE_ROWS)]


def update_video(conn: Conn, video_id: str, changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Edits a video (fields left out keep their value); ``active=False`` deactivates it. Returns (before, after)."""
    before = conn.one(q.VIDEO, id=video_id)
    if before is None:
        raise NotFound("no such video", code=codes.VIDEO_NOT_FOUND)
    fields = {k: changes.get(k) for k in ("title", "description", "reward_micros", "required_watch_pct", "active")}
    row = conn.one(q.UPDATE, id=video_id, **fields)
    assert row is not None
    invalidate_catalogue()
    return present(before), present(row)
