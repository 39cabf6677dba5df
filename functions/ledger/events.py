"""Event entry of the ``ledger`` area (CloudEvents from Pub/Sub topic ``earnings-credit-requests``)."""

from __future__ import annotations

from typing import Any

from shared.errors import PermanentEventError
from shared.events import Message, handle

TOPIC = "earnings-credit-requests"


def _apply(message: Message) -> None:
    raise PermanentEventError("not implemented yet", code="not_implemented")


def credit_earnings(event: Any) -> None:
    handle("credit_earnings", TOPIC, event, _apply)
