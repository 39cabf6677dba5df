"""HTTP routes of the ``progress`` function: heartbeats while watching, and the user's progress."""

from __future__ import annotations

from typing import Any

from functions.progress import service
from functions.progress.models import HeartbeatBody, HeartbeatResponse, Progress, ProgressListQuery, ProgressPage
from functions.risk import signals
from functions.videos.models import parse_video_id
from shared.config import get_settings
from shared.db import get_db
from shared.errors import AppError
from shared.http import Ctx, Router
from shared.sessions import authenticate

# A heartbeat's budget (p99 50 ms) is smaller than a Pub/Sub publish: its events (video_completed,
# earnings_credited) go out with the outbox sweep, within about a minute.
router = Router("progress", publish_events=False)


@router.route(
    "POST",
    "/{video_id}",
    auth="user_inline",
    body=HeartbeatBody,
    response=HeartbeatResponse,
    summary="Heartbeat while watching; completes the video and credits its reward",
)
def heartbeat(ctx: Ctx) -> dict[str, Any]:
    # auth="user_inline": the session check runs in the heartbeat's own statement (one round trip).
    try:
        video_id = parse_video_id(ctx.params["video_id"])
    except AppError:
        with get_db().connection() as conn:  # 401/403/429 before anything about the input
            ctx.principal = authenticate(conn, ctx.token, get_settings())
        raise
    client = (ctx.ip, ctx.request.headers.get(signals.INSTALL_ID_HEADER))
    # A connection, no transaction: the heartbeat is one autocommitted statement; a due completion
    # opens its own retried transaction on it (functions/progress/service.py).
    with get_db().connection() as conn:
        ctx.principal, result = service.heartbeat_with_session(conn, ctx.token, video_id, ctx.body, client=client)
    return result


@router.route("GET", "/{video_id}", response=Progress, summary="The signed-in user's progress on one video")
def get_progress(ctx: Ctx) -> dict[str, Any]:
    video_id = parse_video_id(ctx.params["video_id"])
    with get_db().connection() as conn:
        return service.get_progress(conn, ctx.user_id, video_id)


@router.route(
    "GET", "/", query=ProgressListQuery, response=ProgressPage, summary="The signed-in user's videos, most recently started first"
)
def list_progress(ctx: Ctx) -> dict[str, Any]:
    query: ProgressListQuery = ctx.query
    with get_db().connection() as conn:
        return service.list_progress(conn, ctx.user_id, limit=query.limit, cursor=query.cursor, completed=query.completed)
