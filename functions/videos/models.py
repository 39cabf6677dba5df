"""Request and response models and path-parameter parsing of the videos function."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import Field

from shared import error_codes as codes
from shared.errors import ValidationFailed
from shared.models import Body, Money, Page, Response

MAX_REWARD_MICROS = 1_000_000_000  # $1,000: the schema's CHECK says the same
MAX_DURATION_SECONDS = 86_400


def parse_video_id(value: str) -> str:
    """A path's video id as a canonical UUID string; 422 ``invalid_video_id`` when malformed."""
    try:
        if len(value) != 36:
            raise ValueError(value)
        return str(uuid.UUID(value))
    except ValueError as exc:
        raise ValidationFailed("the video id must be a UUID", code=codes.INVALID_VIDEO_ID) from exc


class VideoCreate(Body):
    """What staff give to create a video (the admin function validates its body with this model)."""

    title: Annotated[str, Field(min_length=1, max_length=200)]
    duration_seconds: Annotated[int, Field(gt=0, le=MAX_DURATION_SECONDS)]
    reward_micros: Annotated[int, Field(ge=0, le=MAX_REWARD_MICROS)]
    required_watch_pct: Annotated[int, Field(ge=1, le=100)] = 90
    description: Annotated[str, Field(max_length=2000)] = ""
    media_url: Annotated[str | None, Field(min_length=1, max_length=2000, pattern=r"^https://")] = None
    thumbnail_url: Annotated[str | None, Field(min_length=1, max_length=2000, pattern=r"^https://")] = None
    active: bool = True
    slug: Annotated[str | None, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,79}$")] = None


# --- responses ---------------------------------------------------------------------------------------
class Video(Response):
    """A video as clients see it."""

    id: str
    title: str
    description: str
    media_url: str | None
    thumbnail_url: str | None
    duration_seconds: int
    reward: Money = Field(description="credited once on completion")
    required_watch_pct: int
    required_seconds: int = Field(description="credited watch time that completes the video")
    active: bool


class VideoList(Page):
    items: list[Video]


class VideoUpdate(Body):
    """A partial edit of a video by staff: every field optional; ``active: false`` deactivates it."""

    title: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    description: Annotated[str | None, Field(max_length=2000)] = None
    reward_micros: Annotated[int | None, Field(ge=0, le=MAX_REWARD_MICROS)] = None
    required_watch_pct: Annotated[int | None, Field(ge=1, le=100)] = None
    active: bool | None = None
