"""Request models and validation of the payouts function (its settings are in shared.config.Settings, payout_*).

Bank accounts: either an IBAN (length per country and the ISO 13616 mod-97 checksum) or a US account
(9-digit ABA routing number with its checksum, 4-17 digit account number, checking or savings), each
with the account holder's name. PayPal: an email address.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictInt, model_validator

from functions.auth.models import Email
from shared.config import MAX_PAYOUT_CENTS  # the ledger's largest single entry: no payout can be larger
from shared.models import Body, Money, Page, QueryParams, Response, collapse_whitespace

STATES = ("requested", "approved", "rejected", "submitted", "paid", "failed", "cancelled")
PayoutState = Literal["requested", "approved", "rejected", "submitted", "paid", "failed", "cancelled"]


# --- validation helpers ------------------------------------------------------------------------------
# IBAN lengths per country (SWIFT IBAN registry).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27, "BR": 29, "BY": 28,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28, "NL": 18,
    "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29,
    "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN_CHARS = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")


def normalise_iban(value: str) -> str:
    """Upper case without spaces; raises ValueError unless the country length and mod-97 checksum hold."""
    iban = re.sub(r"[\s-]", "", value).upper()
    if not _IBAN_CHARS.match(iban):
        raise ValueError("not an IBAN (two letters, two check digits, then letters and digits)")
    expected = IBAN_LENGTHS.get(iban[:2])
    if expected is None:
        raise ValueError(f"IBANs from country {iban[:2]} are not supported")
    if len(iban) != expected:
        raise ValueError(f"an IBAN from {iban[:2]} has {expected} characters")
    rearranged = iban[4:] + iban[:4]
    if int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 != 1:
        raise ValueError("the IBAN check digits are wrong")
    return iban


def valid_routing_number(value: str) -> str:
    """A US ABA routing number: 9 digits with the 3-7-1 weighted checksum."""
    if not re.fullmatch(r"[0-9]{9}", value):
        raise ValueError("a routing number has 9 digits")
    d = [int(c) for c in value]
    if (3 * (d[0] + d[3] + d[6]) + 7 * (d[1] + d[4] + d[7]) + (d[2] + d[5] + d[8])) % 10 != 0 or value == "000000000":
        raise ValueError("the routing number's checksum is wrong")
    return value


Iban = Annotated[str, Field(min_length=15, max_length=42), AfterValidator(normalise_iban)]
RoutingNumber = Annotated[str, Field(min_length=9, max_length=9), AfterValidator(valid_routing_number)]
AccountNumber = Annotated[str, Field(pattern=r"^[0-9]{4,17}$")]
Holder = Annotated[str, Field(min_length=1, max_length=140), AfterValidator(collapse_whitespace)]
# Re-authentication: the same bounds as login.
Password = Annotated[str, Field(min_length=1, max_length=128)]
Uuid = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")]


class MethodCreateBody(Body):
    """``{"type": "paypal", "email": ...}`` or ``{"type": "bank_account", "account_holder": ..., "iban": ...}``
    or ``{"type": "bank_account", "account_holder": ..., "routing_number": ..., "account_number": ..., "account_type": ...}``,
    plus ``password`` (re-authentication) and optionally ``make_default``."""

    type: Literal["paypal", "bank_account"]
    password: Password
    make_default: StrictBool = False
    email: Email | None = None
    account_holder: Holder | None = None
    iban: Iban | None = None
    routing_number: RoutingNumber | None = None
    account_number: AccountNumber | None = None
    account_type: Literal["checking", "savings"] | None = None

    @model_validator(mode="after")
    def _fields_match_type(self) -> MethodCreateBody:
        bank = ("account_holder", "iban", "routing_number", "account_number", "account_type")
        given = {name for name in ("email", *bank) if getattr(self, name) is not None}
        if self.type == "paypal":
            if given != {"email"}:
                raise ValueError("a paypal method takes exactly: email")
        elif given not in ({"account_holder", "iban"}, {"account_holder", "routing_number", "account_number", "account_type"}):
            raise ValueError(
                "a bank_account method takes account_holder with either iban, or routing_number, account_number and account_type"
            )
        return self

    def details(self) -> dict[str, Any]:
        """The sensitive part, encrypted at rest (and what the provider gets as the destination)."""
        if self.type == "paypal":
            return {"email": self.email}
        if self.iban:
            return {"account_holder": self.account_holder, "iban": self.iban, "country": self.iban[:2]}
        return {
            "account_holder": self.account_holder,
            "routing_number": self.routing_number,
            "account_number": self.account_number,
            "account_type": self.account_type,
            "country": "US",
        }


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
