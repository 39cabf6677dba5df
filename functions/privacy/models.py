"""Request models of the privacy function."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from shared.models import Body


class EraseBody(Body):
    """Erasure is irreversible: the password again, and the word ERASE typed out."""

    password: Annotated[str, Field(min_length=1, max_length=128)]
    confirm: Literal["ERASE"]
