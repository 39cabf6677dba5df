"""Event entry of the ``privacy`` area: ``export_user_data`` on the Pub/Sub topic ``privacy-exports``.

The message is ``{"export_id": "<uuid>", "user_id": "<uuid>"}``. A malformed message or an export
that does not exist (or is someone else's) is dead-lettered; a storage or database failure is
raised so Pub/Sub redelivers; a redelivery of a finished export is a no-op.
"""

from __future__ import annotations

from typing import Any

from functions.privacy import flows, service
from shared import error_codes as codes
from shared.db import get_db
from shared.errors import PermanentEventError
from shared.events import Message, handle
from shared.ids import uuid_or

TOPIC = service.TOPIC


def _uuid(value: Any, field: str) -> str:
    return uuid_or(value, PermanentEventError(f"{field} is not a UUID", code=codes.MALFORMED_MESSAGE))


def _apply(message: Message) -> None:
    if "export_id" not in message.data or "user_id" not in message.data:
        raise PermanentEventError("export_id and user_id are required", code=codes.MALFORMED_MESSAGE)
    export_id = _uuid(message.data["export_id"], "export_id")
    user_id = _uuid(message.data["user_id"], "user_id")
    flows.process_export(get_db(), export_id, user_id=user_id)


def export_user_data(event: Any) -> None:
    handle("export_user_data", TOPIC, event, _apply)
