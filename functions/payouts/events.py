"""Event entry of the ``payouts`` area (CloudEvents from Pub/Sub topic ``payout-batches``).

Cloud Scheduler publishes ``{"batch_size": 1000}`` (optionally ``"max_batches": N``) every 15 minutes.
A tick is disposable: a malformed message or a misconfigured provider is dead-lettered (the next
tick comes anyway); a database outage is raised so Pub/Sub redelivers.
"""

from __future__ import annotations

from typing import Any

from functions.payouts import batch
from functions.payouts.providers import ProviderConfigError
from shared import error_codes as codes
from shared.config import get_settings
from shared.errors import PermanentEventError
from shared.events import Message, handle

TOPIC = "payout-batches"
MAX_BATCH_SIZE = 10_000


def _int_field(data: dict[str, Any], name: str, default: int, high: int) -> int:
    value = data.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise PermanentEventError(f"{name} must be an integer from 1 to {high}", code=codes.INVALID_MESSAGE)
    return value


def _apply(message: Message) -> None:
    settings = get_settings()
    size = _int_field(message.data, "batch_size", settings.payout_batch_size, MAX_BATCH_SIZE)
    max_batches = _int_field(message.data, "max_batches", 10, 100)
    try:
        provider = batch.provider_for(settings)
    except ProviderConfigError as exc:
        raise PermanentEventError(f"payout provider misconfigured: {exc}", code=codes.PROVIDER_MISCONFIGURED) from exc
    batch.process_payouts(provider=provider, batch_size=size, max_batches=max_batches, settings=settings)


def process_payouts(event: Any) -> None:
    handle("process_payouts", TOPIC, event, _apply)
