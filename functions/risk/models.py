"""Request and response models of the staff review queue (admin function, docs/admin.md, docs/fraud.md)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field

from shared.models import Body, Money, Page, Response, collapse_whitespace
from shared.pagination import PageQuery

RiskState = Literal["ok", "watch", "review", "suspended", "banned"]
Reason = Annotated[str, Field(min_length=1, max_length=500), AfterValidator(collapse_whitespace)]


class RiskQueueQuery(PageQuery):
    state: RiskState = "review"


class SignalSummary(Response):
    rule: str
    value: int
    score: int
    enforced: bool = Field(description="false: shadow mode (recorded, no effect)")


class QueueItem(Response):
    user_id: str
    email: str
    risk_state: RiskState
    risk_state_changed_at: dt.datetime | None
    created_at: dt.datetime
    score: int = Field(description="the sum of the account's enforced signal scores")
    signals: list[SignalSummary]


class RiskQueuePage(Page):
    items: list[QueueItem]


class Signal(Response):
    rule: str
    value: int = Field(description="what the rule measured (compare with threshold)")
    threshold: int
    score: int
    enforced: bool
    address_only: bool = Field(description="a shared-address signal: alone it never leads further than review")
    details: dict[str, Any]
    first_seen_at: dt.datetime
    updated_at: dt.datetime


class GraphNode(Response):
    user_id: str
    risk_state: RiskState
    role: Literal["subject", "linked"]


class GraphEdge(Response):
    source: str
    target: str
    via: Literal["device", "prefix", "payout_destination"]


class LinkGraph(Response):
    """The account and the accounts sharing a device, network prefix or payout destination with it (at most 50)."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]


class Referral(Response):
    user_id: str
    risk_state: RiskState
    created_at: dt.datetime
    referral_status: str


class ReferralTree(Response):
    referrer_id: str | None = Field(description="who referred this account")
    referred: list[Referral] = Field(description="the accounts this one referred (at most 100)")


class Velocity(Response):
    completions_1h: int
    completions_24h: int
    completions_7d: int
    rewards_24h: Money
    rewards_7d: Money


class Transition(Response):
    id: int
    from_state: RiskState
    to_state: RiskState
    actor_kind: Literal["rules", "staff"]
    actor_id: str | None
    reason: str
    score: int | None
    created_at: dt.datetime


class RiskCase(Response):
    user_id: str
    risk_state: RiskState
    score: int
    shadow_score: int = Field(description="what the rules in shadow mode would add")
    signals: list[Signal]
    links: LinkGraph
    referrals: ReferralTree
    velocity: Velocity
    transitions: list[Transition]


class DecisionBody(Body):
    decision: Literal["clear", "watch", "review", "suspend", "ban"]
    reason: Reason


class DecisionEffects(Response):
    sessions_revoked: int | None = None
    entries_clawed_back: int | None = None
    clawed_back: Money | None = None


class Decision(Response):
    user_id: str
    from_state: RiskState
    to_state: RiskState
    transition_id: int
    effects: DecisionEffects


class Rule(Response):
    name: str
    description: str
    threshold: int
    window_minutes: int
    weight: int
    address_only: bool
    flag: str = Field(description="the feature flag that enforces the rule (off: shadow mode)")
    updated_at: dt.datetime
    updated_by: str | None


class RuleList(Response):
    items: list[Rule]


class RuleBody(Body):
    threshold: Annotated[int, Field(ge=1, le=1_000_000)]
    window_minutes: Annotated[int, Field(ge=1, le=525_600)]
    weight: Annotated[int, Field(ge=0, le=100)]
