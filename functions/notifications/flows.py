"""The notifications workflow: a step outside the database (SMTP) between database steps.

Each step is a ``Conn``-taking function of ``service``; this module only opens the transactions
(docs/architecture.md, "Transactions").
"""

from __future__ import annotations

from functions.notifications import service
from shared.config import Settings
from shared.db import Database
from shared.logs import get_logger
from shared.mail import SmtpSender

log = get_logger(__name__)


def deliver(db: Database, notification_id: int, settings: Settings, sender: SmtpSender | None = None) -> str:
    """Sends one notification's email at most once; returns "sent", "duplicate" or "skipped"."""
    with db.transaction() as conn:
        row = service.claim(conn, notification_id)
        if isinstance(row, str):
            return row
        token = None
        if service.needs_token(row):
            # Committed on its own before the send: the link works the moment the email arrives (a fast
            # reader, or a test, must not beat this transaction's commit). A token of a send that fails
            # was never shown to anyone and just expires; the redelivery issues another.
            with db.transaction() as token_conn:
                token = service.issue_token(token_conn, row, settings)
        # Sent while the row is locked: a failure rolls back and Pub/Sub redelivers; once the server
        # accepted the message, the commit records it and no redelivery sends it again.
        service.send(conn, row, token, settings, sender)
    log.info("notification emailed", extra={"event": "notification_sent", "notification_id": notification_id, "kind": row["kind"]})
    return "sent"
