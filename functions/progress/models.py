"""Request models of the progress function."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from functions.videos.models import MAX_DURATION_SECONDS
from shared.models import Body
from shared.pagination import PageQuery

_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
# JavaScript's largest safe integer: any client can count this high without losing precision.
MAX_CLIENT_SEQ = 2**53 - 1


class HeartbeatBody(Body):
    """One heartbeat while a video plays (or is paused), every ~10 s and on pause/seek/end.

    ``client_seq`` grows with every heartbeat of one playback session; ``session_id`` (a UUID the
    client makes when playback starts; optional) lets a new playback, on another device or after a
    reinstall, start counting again from 0.
    """

    position_seconds: Annotated[float, Field(ge=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False)]
    playing: bool
    client_seq: Annotated[int, Field(ge=0, le=MAX_CLIENT_SEQ)]
    session_id: Annotated[str | None, Field(pattern=_UUID)] = None


class ProgressListQuery(PageQuery):
    """``?limit&cursor&completed=true|false``."""

    completed: bool | None = None
