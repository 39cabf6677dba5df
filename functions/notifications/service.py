"""User notifications: recorded with the change that causes them, emailed by ``send_notifications``.

``notify(conn, user_id, kind, data)`` runs inside the causing transaction: it inserts the
notification (listed by GET /auth/notifications) and writes an outbox row to the ``notifications``
topic, so the email exists exactly when the change committed. ``flows.deliver`` is the consumer:
it locks the notification row (``claim``), sends nothing when ``email_sent_at`` is already set (a
redelivery, or two at once: the second waits on the lock), issues the link's token for the kinds that
carry one (``issue_token``, committed at once in its own transaction), sends through the SMTP adapter
and marks the row sent (``send``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from functions.auth import tokens
from functions.notifications import queries as q
from functions.notifications.templates import KINDS, TOKEN_PURPOSE, render
from shared import outbox
from shared.config import Settings
from shared.db import Conn
from shared.logs import get_logger
from shared.mail import Mail, SmtpSender

log = get_logger(__name__)
TOPIC = "notifications"


def notify(
    conn: Conn, user_id: str, kind: str, data: dict[str, Any] | None = None, *, email_to: str | None = None, email: bool = True
) -> int:
    """Records a notification in the caller's transaction and queues its email (to ``email_to``, default
    the account's address); returns its id."""
    return notify_many(conn, kind, [(user_id, data or {}, email_to)], email=email)[0]


def notify_many(conn: Conn, kind: str, items: Sequence[tuple[str, dict[str, Any], str | None]], *, email: bool = True) -> list[int]:
    """``notify`` for many ``(user_id, data, email_to or None)`` of one kind: two statements however many
    (a payout batch notifies every payee); returns the notification ids in the order given."""
    if kind not in KINDS:
        raise ValueError(f"unknown notification kind {kind!r}")
    if not items:
        return []
    rows = conn.all(
        q.INSERT_MANY,
        kind=kind,
        email=email,
        rows=json.dumps([{"user_id": u, "data": d, "email_to": to} for u, d, to in items], default=str),
    )
    outbox.emit_many(
        conn,
        "notification",
        [({"notification_id": r["id"]}, f"notification:{r['id']}") for r in rows if r["email_to"]],
        topic=TOPIC,
    )
    return [int(r["id"]) for r in rows]


def list_for_user(conn: Conn, user_id: str, *, limit: int, before: int | None) -> dict[str, Any]:
    rows = conn.all(q.LIST_FOR_USER, user_id=user_id, limit=limit + 1, before=before)
    items = [
        {
            "id": r["id"],
            "kind": r["kind"],
            "data": _data(json.loads(r["data"])),
            "created_at": r["created_at"],
            "emailed_at": r["email_sent_at"],
        }
        for r in rows[:limit]
    ]
    return {"items": items, "next_before": items[-1]["id"] if len(rows) > limit else None}


DATA_FIELDS = ("payout_id", "amount", "reason", "decision", "new_email", "ip", "user_agent", "state")


def _data(stored: dict[str, Any]) -> dict[str, Any]:
    """A notification's data as the API shows it: every field, null where the kind has none."""
    return {name: stored.get(name) for name in DATA_FIELDS}


def token_minutes(purpose: str, settings: Settings) -> int:
    return settings.password_reset_minutes if purpose == "reset_password" else settings.email_verify_hours * 60


def claim(conn: Conn, notification_id: int) -> dict[str, Any] | str:
    """Locks a notification for its email (in the caller's transaction, held while it is sent): the row,
    or "skipped" (nothing to send) or "duplicate" (already sent)."""
    row = conn.one(q.CLAIM, id=notification_id)
    if row is None or not row["email_to"] or row["status"] == "erased":
        return "skipped"
    if row["email_sent_at"] is not None:
        return "duplicate"
    return row


def needs_token(row: dict[str, Any]) -> bool:
    """Whether the notification's email carries a link with a token (verification, reset, email change)."""
    return row["kind"] in TOKEN_PURPOSE


def issue_token(conn: Conn, row: dict[str, Any], settings: Settings) -> str:
    """Issues the token of a claimed notification's link (``flows.deliver`` commits it on its own)."""
    purpose = TOKEN_PURPOSE[row["kind"]]
    new_email = json.loads(row["data"]).get("new_email") if purpose == "change_email" else None
    token, _ = tokens.issue(conn, row["user_id"], purpose, minutes=token_minutes(purpose, settings), new_email=new_email)
    return token


def send(conn: Conn, row: dict[str, Any], token: str | None, settings: Settings, sender: SmtpSender | None = None) -> None:
    """Sends a claimed notification's email and marks it sent (in the claiming transaction)."""
    data = json.loads(row["data"])
    if token is not None:
        data["token"] = token
    rendered = render(row["kind"], data, base_url=settings.public_base_url, display_name=row["display_name"])
    domain = settings.mail_from.rsplit("@", 1)[-1].rstrip(">").strip() or "earnpay.local"
    mail = Mail(row["email_to"], rendered.subject, rendered.text, rendered.html, f"<notification-{row['id']}@{domain}>")
    (sender or SmtpSender(settings)).send(mail)
    conn.execute(q.MARK_SENT, id=row["id"])
