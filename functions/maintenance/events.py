"""Event entry of the ``maintenance`` area (CloudEvents from Pub/Sub topic ``maintenance-tasks``)."""

from __future__ import annotations

from typing import Any

from shared.errors import PermanentEventError
from shared.events import Message, handle

TOPIC = "maintenance-tasks"


def _apply(message: Message) -> None:
    raise PermanentEventError("not implemented yet", code="not_implemented")


def run_maintenance(event: Any) -> None:
    handle("run_maintenance", TOPIC, event, _apply)
