"""Event entry of the ``privacy`` area (CloudEvents from Pub/Sub topic ``privacy-exports``)."""

from __future__ import annotations

from typing import Any

from shared.errors import PermanentEventError
from shared.events import Message, handle

TOPIC = "privacy-exports"


def _apply(message: Message) -> None:
    raise PermanentEventError("not implemented yet", code="not_implemented")


def export_user_data(event: Any) -> None:
    handle("export_user_data", TOPIC, event, _apply)
