"""Event entry of the ``notifications`` area (CloudEvents from the Pub/Sub topic ``notifications``).

A message is ``{"notification_id": N}`` written by the outbox. A malformed one is dead-lettered; a
misconfigured mail provider too (retrying cannot fix it; the operator replays from the dead-letter
topic); an SMTP or database failure is raised so Pub/Sub redelivers (and ``deliver`` deduplicates).
"""

from __future__ import annotations

from typing import Any

from functions.notifications import flows
from shared import error_codes as codes
from shared.config import get_settings
from shared.db import get_db
from shared.errors import PermanentEventError
from shared.events import Message, handle
from shared.mail import MailConfigError, SmtpSender

TOPIC = "notifications"


def _apply(message: Message) -> None:
    notification_id = message.data.get("notification_id")
    if isinstance(notification_id, bool) or not isinstance(notification_id, int) or not 0 < notification_id < 2**63:
        raise PermanentEventError("notification_id must be a positive integer", code=codes.INVALID_MESSAGE)
    settings = get_settings()
    try:
        sender = SmtpSender(settings)
    except MailConfigError as exc:
        raise PermanentEventError(f"mail provider misconfigured: {exc}", code=codes.MAIL_MISCONFIGURED) from exc
    flows.deliver(get_db(), notification_id, settings, sender)


def send_notifications(event: Any) -> None:
    handle("send_notifications", TOPIC, event, _apply)
