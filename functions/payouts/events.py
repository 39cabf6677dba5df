"""Event entry of the ``payouts`` area (CloudEvents from Pub/Sub topic ``payout-batches``)."""

from __future__ import annotations

from typing import Any

from shared.errors import PermanentEventError
from shared.events import Message, handle

TOPIC = "payout-batches"


def _apply(message: Message) -> None:
    raise PermanentEventError("not implemented yet", code="not_implemented")


def process_payouts(event: Any) -> None:
    handle("process_payouts", TOPIC, event, _apply)
