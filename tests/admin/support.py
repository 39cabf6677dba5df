"""Helpers of the back-office tests: crediting a user through a staff adjustment."""

from __future__ import annotations

import uuid
from typing import Any

from shared.db import Query
from tests.helpers import Api, User

VERIFY_KYC = Query("t_admin_verify_kyc", "UPDATE users SET kyc_status = 'verified' WHERE id = CAST(:u AS uuid)", prepared=False)


def credit(api: Api, admin: User, user: User, amount: int, key: str | None = None, reason: str = "goodwill credit") -> Any:
    """POST /admin/adjustments as ``admin`` for ``user`` (a fresh Idempotency-Key unless ``key``); the response."""
    return api.post(
        "/admin/adjustments",
        user=admin,
        json={"user_id": user.id, "amount_micros": amount, "reason": reason},
        headers={"Idempotency-Key": key or uuid.uuid4().hex},
    )


def fund(api: Api, owner_conn: Any, admin: User, user: User, amount: int, reason: str) -> None:
    """Makes ``user`` able to request a payout: KYC verified and ``amount`` micros credited by ``admin``."""
    owner_conn.execute(VERIFY_KYC, u=user.id)
    resp = credit(api, admin, user, amount, reason=reason)
    assert resp.status_code == 201, resp.get_data(as_text=True)
