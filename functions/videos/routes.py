"""HTTP routes of the ``videos`` function: the catalogue for signed-in users."""

from __future__ import annotations

from typing import Any

import flask

from functions.videos import service
from functions.videos.models import Video, VideoList, parse_video_id
from shared.db import get_db
from shared.http import Ctx, Router, json_response

router = Router("videos")

# Private (per-user authorisation) and always revalidated: a 304 costs no database query.
_CACHE_CONTROL = "private, no-cache"


@router.route("GET", "/", response=VideoList, statuses=(304,), summary="The active video catalogue (ETag / If-None-Match -> 304)")
def list_videos(ctx: Ctx) -> flask.Response:
    with get_db().connection() as conn:
        cat = service.catalogue(conn)
    headers = {"ETag": cat.etag, "Cache-Control": _CACHE_CONTROL}
    if service.etag_matches(ctx.request.headers.get("If-None-Match"), cat.etag):
        return flask.Response(status=304, headers=headers)
    return json_response(cat.body, headers=headers)


@router.route("GET", "/{video_id}", response=Video, summary="One active video")
def get_video(ctx: Ctx) -> dict[str, Any]:
    video_id = parse_video_id(ctx.params["video_id"])
    with get_db().connection() as conn:
        return service.get_video(conn, video_id)
