"""Request and response models of the progress function."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from functions.videos.models import MAX_DURATION_SECONDS
from shared.models import Body, Money, Page, Response
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


# --- responses ---------------------------------------------------------------------------------------
class Reward(Response):
    """A completed video's reward: what was credited and what the daily cap withheld."""

    credited: Money
    withheld: Money
    withheld_reason: Literal["daily_cap"] | None
    entry_id: int | None = Field(description="the ledger entry of the credit; null when nothing was credited")


class BalanceNow(Response):
    available: Money


class DailyBonusCredit(Response):
    type: Literal["login_bonus", "streak_bonus"]
    amount: Money
    entry_id: int


class DailyBonus(Response):
    """The day's bonus and streak, credited (pending) by the day's first verified watching."""

    date: dt.date
    streak_days: int
    credited: list[DailyBonusCredit]
    total: Money


class HeartbeatResponse(Response):
    video_id: str
    accepted: bool = Field(description="false for a stale (out-of-order or repeated) heartbeat")
    status: Literal["started", "stream_started", "accepted", "credited", "completed", "stale", "completion_due"]
    credited_now_seconds: float
    position_seconds: float
    credited_seconds: float
    required_seconds: int
    duration_seconds: int
    completed: bool
    completed_at: dt.datetime | None
    reward: Reward | None = Field(description="set once the video is completed")
    balance: BalanceNow | None = Field(description="the fresh balance, on the heartbeat that completed the video")
    daily_bonus: DailyBonus | None = Field(
        None, description="on the completion that was the day's first verified watching: the day's bonus and streak"
    )


class Progress(Response):
    video_id: str
    title: str
    video_active: bool
    duration_seconds: int
    required_seconds: int
    video_reward: Money | None
    started: bool
    position_seconds: float
    credited_seconds: float
    playing: bool
    heartbeats: int
    started_at: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    completed: bool
    completed_at: dt.datetime | None
    reward: Reward | None


class ProgressPage(Page):
    items: list[Progress]
