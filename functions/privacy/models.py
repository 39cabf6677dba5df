"""Request and response models of the privacy function."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import Field

from shared.models import Body, Response


class EraseBody(Body):
    """Erasure is irreversible: the password again, and the word ERASE typed out."""

    password: Annotated[str, Field(min_length=1, max_length=128)]
    confirm: Literal["ERASE"]


# --- responses ---------------------------------------------------------------------------------------
class ExportStatus(Response):
    id: str
    status: Literal["queued", "ready", "failed", "expired", "deleted"]
    requested_at: dt.datetime
    ready_at: dt.datetime | None
    expires_at: dt.datetime | None
    size_bytes: int | None
    download_url: str | None = Field(description="a 15-minute signed URL once ready")
    download_expires_at: dt.datetime | None


class ExportRequested(ExportStatus):
    created: bool = Field(description="false when an export already in progress or ready was returned")


class Erased(Response):
    user_id: str
    status: str
    erased_at: dt.datetime
    removed: dict[str, int] = Field(description="rows removed, by kind")
