"""Request and response models of partner configuration and the finance report (admin function)."""

from __future__ import annotations

import datetime as dt
import ipaddress
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from shared.models import Body, Money, QueryParams, Response

PartnerId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{1,39}$", description="the partner's id in its callback URL")]


def _cidrs(value: list[str] | None) -> list[str] | None:
    if value is not None:
        for item in value:
            ipaddress.ip_network(item, strict=False)
    return value


Cidrs = Annotated[list[Annotated[str, Field(max_length=49)]] | None, Field(max_length=50), AfterValidator(_cidrs)]


class PartnerSettings(Body):
    """What staff configure; every field has the default a new partner gets."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    enabled: bool = False
    reward_micros_per_unit: Annotated[int, Field(ge=1, le=1_000_000_000, description="micro-dollars credited per partner currency unit")]
    revenue_micros_per_unit: Annotated[int, Field(ge=0, le=1_000_000_000, description="micro-dollars the partner pays us per unit")]
    max_units: Annotated[int, Field(ge=1, le=1_000_000_000, description="the largest reward_amount/amount one callback may carry")]
    daily_cap_micros: Annotated[int, Field(ge=1, le=1_000_000_000_000, description="rewards per user per UTC day from this partner")]
    clearing_hours: Annotated[int, Field(ge=0, le=8760, description="how long this partner's rewards stay pending")]
    key_url: Annotated[str, Field(pattern=r"^https?://[^\s]{1,500}$")] | None = Field(
        None, description="rewarded video: the network's public-key endpoint (AdMob's JSON format)"
    )
    allowed_sources: Cidrs = Field(None, description="offerwall: addresses or CIDR ranges postbacks may come from (null: any)")
    timestamp_window_seconds: Annotated[int, Field(ge=10, le=604800)] = 3600
    answer_ok: Annotated[str, Field(max_length=500)] = "1"
    answer_error: Annotated[str, Field(max_length=500)] = "0"
    answer_content_type: Literal["text/plain", "application/json"] = "text/plain"
    error_status: Literal[200, 400, 403, 409, 422] = 400


class PartnerCreate(PartnerSettings):
    id: PartnerId
    kind: Literal["rewarded_video", "offerwall"]


class PartnerUpdate(Body):
    """Only the fields given change (the kind and id never do)."""

    name: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    enabled: bool | None = None
    reward_micros_per_unit: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    revenue_micros_per_unit: Annotated[int, Field(ge=0, le=1_000_000_000)] | None = None
    max_units: Annotated[int, Field(ge=1, le=1_000_000_000)] | None = None
    daily_cap_micros: Annotated[int, Field(ge=1, le=1_000_000_000_000)] | None = None
    clearing_hours: Annotated[int, Field(ge=0, le=8760)] | None = None
    key_url: Annotated[str, Field(pattern=r"^https?://[^\s]{1,500}$")] | None = None
    allowed_sources: Cidrs = None
    timestamp_window_seconds: Annotated[int, Field(ge=10, le=604800)] | None = None
    answer_ok: Annotated[str, Field(max_length=500)] | None = None
    answer_error: Annotated[str, Field(max_length=500)] | None = None
    answer_content_type: Literal["text/plain", "application/json"] | None = None
    error_status: Literal[200, 400, 403, 409, 422] | None = None


class SecretBody(Body):
    secret_hex: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32,128}$", description="the shared HMAC secret, hex (16-64 bytes)")]
    overlap_hours: Annotated[int, Field(ge=0, le=720, description="how long the previous secrets keep verifying")] = 24


class PartnerReversalBody(Body):
    transaction_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:\-]{1,128}$")]
    reason: Annotated[str, Field(min_length=1, max_length=500)]


class CallbacksQuery(QueryParams):
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    before_id: Annotated[int, Field(ge=1)] | None = None


class ReportQuery(QueryParams):
    from_: dt.date = Field(alias="from")
    to: dt.date
    partner_id: PartnerId | None = None


class SecretVersion(Response):
    version: int
    store: Literal["database", "secret_manager"] = Field(
        description="where the secret is: Secret Manager (the database holds only the version's name) or encrypted here"
    )
    created_at: dt.datetime
    retires_at: dt.datetime | None = Field(description="null: the current secret; else it verifies until then")


class Partner(Response):
    id: str
    name: str
    kind: Literal["rewarded_video", "offerwall"]
    enabled: bool
    reward_micros_per_unit: int
    revenue_micros_per_unit: int
    max_units: int
    daily_cap: Money
    clearing_hours: int
    key_url: str | None
    allowed_sources: list[str] | None
    timestamp_window_seconds: int
    answer_ok: str
    answer_error: str
    answer_content_type: str
    error_status: int
    created_at: dt.datetime
    updated_at: dt.datetime
    secrets: list[SecretVersion] = Field(description="signing-secret versions (never the secrets)")


class PartnerList(Response):
    items: list[Partner]


class SecretRotated(Response):
    partner_id: str
    version: int
    secrets: list[SecretVersion]


class PartnerReward(Response):
    partner_id: str
    transaction_id: str
    user_id: str
    units: int
    reward: Money
    revenue: Money
    entry_id: int
    reversal_kind: Literal["clawback", "recovery"] | None = Field(description="clawback: taken back while pending; recovery: owed back")
    reversal_entry_id: int | None
    reversed_at: dt.datetime | None
    duplicate: bool


class CallbackRecord(Response):
    id: int
    kind: Literal["reward", "reversal"]
    transaction_id: str | None
    user_ref: str | None
    outcome: Literal["applied", "duplicate", "refused"]
    reason: str
    source_ip: str
    received_at: dt.datetime


class CallbackList(Response):
    items: list[CallbackRecord]


class ReportTotals(Response):
    revenue: Money = Field(description="what the partner owes for the rewards credited")
    revenue_reversed: Money = Field(description="revenue of the rewards reversed (the partner charged it back)")
    credited: Money
    reversed: Money = Field(description="rewards taken back (clawed back while pending, or owed back as a recovery)")
    recovered: Money = Field(description="the part of reversed that had already cleared (a recovery)")
    paid_out: Money = Field(description="partner rewards that cleared to users' available balances (released for payout)")
    margin: Money = Field(description="(revenue - revenue_reversed) - (credited - reversed)")


class ReportDay(ReportTotals):
    partner_id: str
    day: str
    rewards: int
    reversals: int


class PartnerReport(Response):
    from_: str = Field(alias="from")
    to: str
    items: list[ReportDay]
    totals: ReportTotals
