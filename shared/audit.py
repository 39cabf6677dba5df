"""The append-only audit log: who did what to which record, before and after, under which request.

``record`` runs inside the caller's transaction, so the change and its audit row commit together or
not at all. The table refuses UPDATE, DELETE and TRUNCATE (migration 0025), which means an erasure
can never rewrite it: before/after therefore never hold personal data. ``redact`` replaces the values
of personal fields (email, names, IPs, payout destinations, secrets) wherever they appear, so a
service may hand over its own before/after dicts without leaking them into a permanent record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.db import Conn, Query
from shared.render import dumps


@dataclass(frozen=True)
class Actor:
    """The staff member acting, as the audit log records them (``Ctx.actor`` on a staff route)."""

    user_id: str
    role: str
    request_id: str


REDACTED = "[redacted]"

# Field names whose values are personal data or secrets; compared case-insensitively.
PERSONAL_KEYS = frozenset(
    {
        "email",
        "display_name",
        "name",
        "full_name",
        "first_name",
        "last_name",
        "password",
        "password_hash",
        "token",
        "token_hash",
        "ip",
        "user_agent",
        "phone",
        "address",
        "details",
        "destination",
        "label",
        "method_label",
        "failure_message",
        "last_error",
        "paypal_email",
        "account_number",
        "account_holder",
        "iban",
        "routing_number",
        "sort_code",
        "ciphertext",
        "encrypted_details",
        "wrapped_key",
        "data_key",
        "object_name",
        "url",
        "download_url",
    }
)

ACTOR_ROLES = frozenset({"user", "support", "finance", "compliance", "admin", "system"})

INSERT = Query(
    "audit_insert",
    """INSERT INTO audit_log (actor_id, actor_role, action, target_type, target_id, subject_user_id, before, after, reason, request_id)
       VALUES (CAST(:actor_id AS uuid), :actor_role, :action, :target_type, :target_id, CAST(:subject_user_id AS uuid),
               CAST(:before AS jsonb), CAST(:after AS jsonb), :reason, :request_id)
       RETURNING id""",
)


def redact(value: Any) -> Any:
    """``value`` with the values of personal fields replaced by ``[redacted]`` (recursively)."""
    if isinstance(value, dict):
        return {k: (REDACTED if str(k).lower() in PERSONAL_KEYS and v is not None else redact(v)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    return value


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return dumps(redact(value))


def record(
    conn: Conn,
    *,
    actor_id: str | None,
    actor_role: str,
    action: str,
    target_type: str,
    target_id: str,
    before: Any,
    after: Any,
    request_id: str | None,
    reason: str | None = None,
    subject_user_id: str | None = None,
) -> int:
    """Appends one audit entry in the caller's transaction; returns its id.

    ``subject_user_id`` is the user the action is about; it defaults to ``target_id`` when the
    target is a user.
    """
    if actor_role not in ACTOR_ROLES:
        raise ValueError(f"unknown actor role {actor_role!r}")
    if subject_user_id is None and target_type == "user":
        subject_user_id = target_id
    if reason is not None:
        reason = reason.strip()[:500] or None
    entry_id = conn.value(
        INSERT,
        actor_id=actor_id,
        actor_role=actor_role,
        action=action,
        target_type=target_type,
        target_id=str(target_id),
        subject_user_id=subject_user_id,
        before=_json(before),
        after=_json(after),
        reason=reason,
        request_id=(request_id or None) and str(request_id)[:64],
    )
    return int(entry_id)


def as_json(value: Any) -> Any:
    """A JSON value as stored (for callers comparing what they passed with what was recorded)."""
    text = _json(value)
    return None if text is None else json.loads(text)
