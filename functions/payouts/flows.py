"""The payouts workflows of the user's routes: argon2 (re-authentication) and Cloud KMS (encryption)
between database steps, never inside a transaction. The batch's workflow (claim, the provider, record)
is ``batch.process_batch``.

Each step is a ``Conn``-taking function of ``service``; this module only opens the transactions
(docs/architecture.md, "Transactions").
"""

from __future__ import annotations

from typing import Any

from functions.auth.service import verify_password
from functions.payouts import service
from functions.payouts.models import MethodCreateBody, PayoutCreateBody
from shared.config import Settings, get_settings
from shared.db import Database


def add_method(db: Database, user_id: str, body: MethodCreateBody, settings: Settings | None = None) -> dict[str, Any]:
    """Registers a payout method after re-authentication; the first one (or ``make_default``) becomes the default."""
    with db.connection() as conn:
        verify_password(conn, user_id, body.password)
    envelope = service.encrypt_method(user_id, body)
    with db.transaction() as conn:
        return service.add_method(conn, user_id, body, envelope, settings)


def request_payout(
    db: Database,
    user_id: str,
    body: PayoutCreateBody,
    idempotency_key: str | None = None,
    settings: Settings | None = None,
    client: tuple[str, str | None] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Creates a payout request and its ledger hold in one transaction; returns (payout, created).

    A keyed retry finds the first request before the password is even checked."""
    service.check_amount(body, settings or get_settings())
    with db.connection() as conn:
        existing = service.existing_request(conn, user_id, body, idempotency_key)
        if existing is not None:
            return existing, False
        verify_password(conn, user_id, body.password)
    with db.transaction() as conn:
        return service.request_payout(conn, user_id, body, idempotency_key, client)
