"""Request models and validation of the payouts function (its settings are in shared.config.Settings, payout_*).

A payout method is a PayPal email address: EarnPay pays through PayPal Payouts only, which cannot pay
a bank account, so new bank accounts are refused (migration 0090); methods added before stay
readable with their type ``bank_account``.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from functions.auth.models import Email
from shared.config import MAX_PAYOUT_CENTS  # the ledger's largest single entry: no payout can be larger
from shared.models import Body, Money, Page, QueryParams, Response

STATES = ("requested", "approved", "rejected", "submitted", "paid", "failed", "cancelled")
PayoutState = Literal["requested", "approved", "rejected", "submitted", "paid", "failed", "cancelled"]


# --- validation helpers ------------------------------------------------------------------------------
# Re-authentication: the same bounds as login.
Password = Annotated[str, Field(min_length=1, max_length=128)]
Uuid = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]


class MethodCreateBody(Body):
    """``{"type": "paypal", "email": ...}`` plus ``password`` (re-authentication) and optionally
    ``make_default``. ``"bank_account"`` is refused with a 422 that says why."""

    type: Literal["paypal", "bank_account"]
    password: Password
    make_default: StrictBool = False
    email: Email | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_bank_accounts(cls, data: Any) -> Any:
        """Says why before complaining about a bank account's fields."""
        if isinstance(data, dict) and data.get("type") == "bank_account":
            raise ValueError("bank accounts are not accepted: EarnPay pays through PayPal only; add a paypal method")
        return data

    @model_validator(mode="after")
    def _fields_match_type(self) -> MethodCreateBody:
        if self.email is None:
            raise ValueError("a paypal method takes exactly: email")
        return self

    def details(self) -> dict[str, Any]:
        """The sensitive part, encrypted at rest (and what the provider gets as the destination)."""
        return {"email": self.email}


class PayoutCreateBody(Body):
    """A payout request: whole cents of USD, the method (default method when omitted), and the password."""

    amount_cents: Annotated[
        StrictInt, Field(ge=1, le=MAX_PAYOUT_CENTS, description="whole US cents (an input unit; answers show the money shape)")
    ]
    method_id: Uuid | None = None
    password: Password


class PayoutListQuery(QueryParams):
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, min_length=1, max_length=200)
    status: PayoutState | None = None


# --- responses ---------------------------------------------------------------------------------------
class PayoutMethod(Response):
    """A payout method, masked: the details never leave the server."""

    id: str
    type: Literal["paypal", "bank_account"]
    label: str = Field(description="a masked label, e.g. PayPal t***e@example.com")
    is_default: bool
    created_at: dt.datetime


class PayoutMethodList(Page):
    items: list[PayoutMethod]


class MethodRemoved(Response):
    id: str
    removed_at: dt.datetime
    default_method: PayoutMethod | None = Field(description="the default method after the removal, if any")


class MethodRef(Response):
    id: str
    type: str
    label: str


class PayoutEvent(Response):
    from_: PayoutState | None = Field(alias="from")
    to: PayoutState
    by: Literal["user", "staff", "system"]
    at: dt.datetime


class Payout(Response):
    """A payout as its owner sees it."""

    id: str
    status: PayoutState
    amount: Money
    method: MethodRef
    requested_at: dt.datetime
    decided_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    submitted_at: dt.datetime | None
    completed_at: dt.datetime | None
    updated_at: dt.datetime
    reject_reason: str | None
    failure_code: str | None


class PayoutDetail(Payout):
    events: list[PayoutEvent]


class PayoutPage(Page):
    items: list[Payout]


class StaffPayout(Response):
    """A payout as finance staff see it (and as the audit log records it)."""

    id: str
    user_id: str
    method_id: str
    method_type: str
    method_label: str
    amount: Money
    status: PayoutState
    requested_at: dt.datetime
    decided_at: dt.datetime | None
    decided_by: str | None
    reject_reason: str | None
    cancelled_at: dt.datetime | None
    submitted_at: dt.datetime | None
    completed_at: dt.datetime | None
    updated_at: dt.datetime
    attempts: int
    provider: str | None
    provider_reference: str | None
    provider_status: str | None
    failure_code: str | None
    failure_message: str | None
    last_error: str | None
    claimed_at: dt.datetime | None
    claimed_by: str | None
    next_check_at: dt.datetime | None


class StaffPayoutEvent(Response):
    from_state: PayoutState | None
    to_state: PayoutState
    actor: str
    reason: str | None
    attempt: int
    created_at: dt.datetime


class StaffPayoutDetail(StaffPayout):
    events: list[StaffPayoutEvent]


class TopSignal(Response):
    """One of the account's strongest trust-and-safety signals (docs/fraud.md)."""

    rule: str
    score: int
    enforced: bool = Field(description="false: the rule is in shadow mode for this account (no effect)")


class ReviewPayout(StaffPayout):
    user_email: str
    user_status: str
    user_kyc_status: str
    risk_state: Literal["ok", "watch", "review", "suspended", "banned"] = Field(description="the account's risk state (docs/fraud.md)")
    top_signals: list[TopSignal] = Field(description="the account's three strongest signals, strongest first")


class ReviewPayoutPage(Page):
    items: list[ReviewPayout]
