"""Request and response models of the admin function (the staff back office)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator

from functions.auth.models import AccountStatus, KycState
from functions.ledger.service import MAX_ENTRY
from shared.models import Body, Money, Page, QueryParams, Response, collapse_whitespace
from shared.pagination import PageQuery

UUID_PATTERN = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
UserId = Annotated[str, Field(pattern=UUID_PATTERN), AfterValidator(str.lower)]
Role = Literal["user", "support", "finance", "compliance", "admin"]


# A staff member's reason, kept for good in the audit log: 1-500 characters, whitespace collapsed.
Reason = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(collapse_whitespace)]


class UserSearchQuery(PageQuery):
    """At most one of ``email`` (exact), ``email_prefix`` or ``referral_code``; ``role`` narrows the plain listing."""

    email: Annotated[str | None, Field(min_length=3, max_length=254)] = None
    email_prefix: Annotated[str | None, Field(min_length=1, max_length=254)] = None
    referral_code: Annotated[str | None, Field(min_length=8, max_length=8, pattern=r"^[A-Za-z0-9]{8}$")] = None
    role: Role | None = None

    @model_validator(mode="after")
    def _one_filter(self) -> UserSearchQuery:
        given = [name for name in ("email", "email_prefix", "referral_code") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError("search by one of email, email_prefix or referral_code at a time")
        if given and self.role is not None:
            raise ValueError("role narrows the plain listing only; it cannot be combined with a search")
        return self


class LedgerQuery(PageQuery):
    """A user's ledger entries, newest first; ``type`` keeps one entry type."""

    type: Annotated[str | None, Field(pattern=r"^[a-z][a-z_]{0,39}$")] = None


class RoleBody(Body):
    role: Role


class AdjustmentBody(Body):
    user_id: UserId
    # signed micro-dollars: a credit (> 0) or a debit (< 0), never zero, within the ledger's entry limit
    amount_micros: Annotated[int, Field(ge=-MAX_ENTRY, le=MAX_ENTRY)]
    reason: Reason

    @model_validator(mode="after")
    def _non_zero(self) -> AdjustmentBody:
        if self.amount_micros == 0:
            raise ValueError("amount_micros must not be zero")
        return self


class ReversalBody(Body):
    """Why a pending credit is taken back (kept in the audit log and on the reversal entry)."""

    reason: Reason


class RejectBody(Body):
    reason: Reason


class WithheldGrantBody(Body):
    """Why a reward the daily cap withheld is granted after all (kept in the audit log)."""

    reason: Reason


class KycDecisionBody(Body):
    decision: Literal["verified", "rejected"]
    reason: Reason


class PayoutReviewQuery(PageQuery):
    status: Literal["requested", "approved", "rejected", "submitted", "paid", "failed", "cancelled"] = "requested"


class KycQueueQuery(PageQuery):
    """The KYC review queue, longest-waiting first."""


class AuditQuery(PageQuery):
    """Filters (all optional, combined with AND); newest first."""

    actor_id: UserId | None = None
    subject_user_id: UserId | None = None
    target_type: Annotated[str | None, Field(pattern=r"^[a-z][a-z_]{0,39}$")] = None
    target_id: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    action: Annotated[str | None, Field(pattern=r"^[a-z][a-z0-9_.]{0,63}$")] = None

    @model_validator(mode="after")
    def _target_needs_type(self) -> AuditQuery:
        if self.target_id is not None and self.target_type is None:
            raise ValueError("target_id needs target_type")
        return self


class FlagBody(Body):
    """A feature flag's new state (``description`` omitted keeps the current one)."""

    enabled: bool
    rollout_percent: Annotated[int, Field(ge=0, le=100)]
    description: Annotated[str | None, Field(max_length=500)] = None


# --- responses ---------------------------------------------------------------------------------------
class UserSummary(Response):
    id: str
    email: str
    display_name: str
    referral_code: str
    role: Role
    status: AccountStatus
    kyc_status: KycState
    created_at: dt.datetime


class UserSearchPage(Page):
    items: list[UserSummary]


class StaffUserView(Response):
    id: str
    email: str
    display_name: str
    referral_code: str
    referred_by: str | None
    kyc_status: KycState
    role: Role
    status: AccountStatus
    created_at: dt.datetime
    updated_at: dt.datetime
    erased_at: dt.datetime | None
    live_sessions: int
    last_seen_at: dt.datetime | None


class Balance(Response):
    available: Money
    pending: Money = Field(description="credits not cleared yet (docs/ledger.md, buckets)")
    held: Money = Field(description="held for payouts on their way out")
    lifetime_earned: Money
    lifetime_paid_out: Money
    entry_count: int


class LedgerEntry(Response):
    """A ledger entry as staff see it (with its metadata)."""

    id: int
    seq: int
    type: str
    amount: Money
    balance_after: Money
    source: str
    reference: str | None
    metadata: dict[str, Any] | None
    created_at: dt.datetime


class LedgerPage(Page):
    items: list[LedgerEntry]


class StatusTotal(Response):
    count: int
    amount: Money


class RecentPayout(Response):
    id: str
    status: str
    amount: Money
    method_type: str
    method_label: str
    requested_at: dt.datetime
    decided_at: dt.datetime | None
    completed_at: dt.datetime | None


class UserPayouts(Response):
    by_status: dict[str, StatusTotal]
    in_flight: int
    recent: list[RecentPayout]


class UserDetail(Response):
    user: StaffUserView
    balance: Balance
    recent_entries: list[LedgerEntry]
    payouts: UserPayouts


class RoleChanged(Response):
    user_id: str
    role: Role
    changed: bool
    sessions_revoked: int


class MfaReset(Response):
    user_id: str
    removed: bool = Field(description="false when the account had no second factor")
    sessions_revoked: int


class _AdjustmentEntry(Response):
    """The ledger entry of an adjustment: what both adjustment answers begin with."""

    user_id: str
    entry_id: int
    seq: int
    amount: Money
    balance_after: Money
    created_at: dt.datetime


class Adjustment(_AdjustmentEntry):
    reason: str
    duplicate: bool = Field(description="true when this Idempotency-Key was already posted (the answer is then 200)")


class Reversal(Response):
    """A clawed-back pending credit: the reversal entry that points at it."""

    user_id: str
    entry_id: int = Field(description="the credit reversed")
    reversal_entry_id: int
    reversal_seq: int
    amount: Money = Field(description="the reversal's amount (negative)")
    created_at: dt.datetime
    reason: str
    duplicate: bool = Field(description="true when the credit was already reversed (this is the first reversal)")


class Flag(Response):
    key: str
    enabled: bool
    rollout_percent: int
    description: str
    created_at: dt.datetime
    updated_at: dt.datetime
    updated_by: str | None


class FlagList(Page):
    items: list[Flag]


class AuditEntry(Response):
    id: int
    actor_id: str | None
    actor_role: str
    action: str
    target_type: str
    target_id: str
    subject_user_id: str | None
    before: dict[str, Any] | None = Field(description="the record before the change, as it was shown then")
    after: dict[str, Any] | None
    reason: str | None
    request_id: str | None
    created_at: dt.datetime


class AuditPage(Page):
    items: list[AuditEntry]


class UserSession(Response):
    """One of a user's sessions (no token, address or device: when, and whether it still works)."""

    id: int
    created_at: dt.datetime
    last_seen_at: dt.datetime
    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    revoked_reason: str | None
    live: bool


class UserPayoutMethod(Response):
    """A payout method as staff see it: the masked label only, never the destination."""

    id: str
    type: str
    label: str = Field(description="masked when the method was added (e.g. pp***@example.com, ****1234)")
    is_default: bool
    created_at: dt.datetime
    erased_at: dt.datetime | None


class ReferredUser(UserSummary):
    referred_count: int = Field(description="how many people this referred user referred in turn")


class UserReferralTree(Response):
    referred_by: UserSummary | None
    referred: list[ReferredUser] = Field(description="the newest 50 people this user referred")
    referred_total: int


class WithheldReward(Response):
    """A reward the daily cap withheld, and whether staff granted it."""

    id: int
    video_id: str
    video_title: str
    day: dt.date
    reward: Money
    withheld: Money
    status: Literal["withheld", "granted", "dismissed"]
    resolved_at: dt.datetime | None
    resolution_entry_id: int | None
    created_at: dt.datetime


class UserAccount(Response):
    """Everything else the console's user page shows beside the detail and the ledger."""

    user_id: str
    sessions: list[UserSession] = Field(description="the newest 20 sessions")
    payout_methods: list[UserPayoutMethod]
    referrals: UserReferralTree
    withheld_rewards: list[WithheldReward] = Field(description="the newest 50")


class WithheldGrant(Response):
    withheld_id: int
    user_id: str
    status: Literal["granted"]
    amount: Money
    entry_id: int
    balance_after: Money


class AdjustmentLookupQuery(QueryParams):
    """An adjustment by the Idempotency-Key it was posted with: the user it was for, the key, and the
    staff member who posted it (default: the caller)."""

    user_id: UserId
    idempotency_key: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
    staff_id: UserId | None = None


class AdjustmentFound(_AdjustmentEntry):
    """An adjustment found by the Idempotency-Key it was posted with."""

    reason: str | None
    staff_id: str = Field(description="the staff member who posted it")
    idempotency_key: str
