"""HTTP routes of the ``admin`` function: the staff back office.

The role matrix (docs/admin.md) is declared here, route by route, and enforced by the router before
any handler runs (403 ``role_forbidden``): support reads users and their ledgers; finance also
decides payouts and claws back pending credits; compliance also decides KYC and reads the audit log; admin does everything.
Every handler runs in one transaction with its audit entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from functions.admin import service
from functions.admin.models import (
    Adjustment,
    AdjustmentBody,
    AdjustmentFound,
    AdjustmentLookupQuery,
    AuditPage,
    AuditQuery,
    Flag,
    FlagBody,
    FlagList,
    KycDecisionBody,
    KycQueueQuery,
    LedgerPage,
    LedgerQuery,
    MfaReset,
    PayoutReviewQuery,
    RejectBody,
    Reversal,
    ReversalBody,
    RoleBody,
    RoleChanged,
    UserAccount,
    UserDetail,
    UserSearchPage,
    UserSearchQuery,
    WithheldGrant,
    WithheldGrantBody,
)
from functions.kyc.models import KycDecision, ReviewDocuments, ReviewQueue
from functions.partners import admin_routes as partner_admin
from functions.payouts.models import ReviewPayoutPage, StaffPayout, StaffPayoutDetail
from functions.risk.models import Decision, DecisionBody, RiskCase, RiskQueuePage, RiskQueueQuery, Rule, RuleBody, RuleList
from functions.videos.models import Video, VideoCreate, VideoList, VideoUpdate
from shared import error_codes as codes
from shared import idempotency
from shared.db import get_db, read_replica
from shared.errors import NotFound
from shared.http import Ctx, Reply, Router

T = TypeVar("T")
# The audit log may trail the primary by this much when read from the replica.
AUDIT_MAX_LAG_S = 5.0

router = Router("admin", console_cors=True)  # the staff console calls it from its own origin (CONSOLE_ORIGINS)

READERS = ("support", "finance", "compliance", "admin")
FINANCE = ("finance", "admin")
COMPLIANCE = ("compliance", "admin")
ADMIN = ("admin",)
AUDITORS = ("compliance", "admin")


def _as_staff(ctx: Ctx, action: Callable[..., T], *args: Any) -> T:
    """``action(conn, actor, *args)`` in one transaction: a change (or a read of personal data) commits
    with its audit entry, or neither does."""
    with get_db().transaction() as conn:
        return action(conn, ctx.actor, *args)


def _as_staff_replayable(ctx: Ctx, action: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """``_as_staff``, and the answer stored for the request's Idempotency-Key in the same transaction:
    a keyed retry (even after a crash) replays the decision instead of making it twice."""
    with get_db().transaction() as conn:
        result = action(conn, ctx.actor, *args)
        idempotency.store_answer_in(conn, result, 200)
        return result


def _read(action: Callable[..., T], *args: Any) -> T:
    """``action(conn, *args)`` on a pooled connection: a list that writes nothing and is not audited."""
    with get_db().connection() as conn:
        return action(conn, *args)


# --- users -----------------------------------------------------------------------------------------
@router.route(
    "GET",
    "/users",
    auth="staff",
    roles=READERS,
    query=UserSearchQuery,
    response=UserSearchPage,
    summary="Search users by email, prefix or referral code",
)
def search_users(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.search_users, ctx.query)


@router.route(
    "GET",
    "/users/{user_id}",
    auth="staff",
    roles=READERS,
    response=UserDetail,
    summary="A user's profile, balance, recent entries and payouts",
)
def user_detail(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.user_detail, ctx.params["user_id"])


@router.route(
    "GET",
    "/users/{user_id}/ledger",
    auth="staff",
    roles=READERS,
    query=LedgerQuery,
    response=LedgerPage,
    summary="A user's ledger, newest first",
)
def user_ledger(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.user_ledger, ctx.params["user_id"], ctx.query.limit, ctx.query.cursor, ctx.query.type)


@router.route(
    "GET",
    "/users/{user_id}/account",
    auth="staff",
    roles=READERS,
    response=UserAccount,
    summary="A user's sessions, payout methods (masked), referral tree and withheld rewards",
)
def user_account(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.user_account, ctx.params["user_id"])


@router.route(
    "POST",
    "/users/{user_id}/withheld/{withheld_id}/grant",
    auth="staff",
    roles=ADMIN,
    body=WithheldGrantBody,
    idempotent=True,
    response=WithheldGrant,
    step_up=True,
    summary="Grant a reward the daily cap withheld (credited once)",
)
def grant_withheld(ctx: Ctx) -> dict[str, Any]:
    raw = ctx.params["withheld_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise NotFound("no such withheld reward for this user", code=codes.WITHHELD_NOT_FOUND)
    return _as_staff_replayable(ctx, service.grant_withheld, ctx.params["user_id"], int(raw), ctx.body.reason)


@router.route(
    "POST",
    "/users/{user_id}/role",
    auth="staff",
    roles=ADMIN,
    body=RoleBody,
    response=RoleChanged,
    summary="Change a user's role (revokes their sessions)",
    step_up=True,
)
def set_role(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.set_role, ctx.params["user_id"], ctx.body.role)


@router.route(
    "POST",
    "/users/{user_id}/mfa/reset",
    auth="staff",
    roles=ADMIN,
    response=MfaReset,
    summary="Reset another staff member's two-factor (audited; revokes their sessions)",
    step_up=True,
)
def reset_mfa(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.reset_mfa, ctx.params["user_id"])


@router.route(
    "POST",
    "/adjustments",
    auth="staff",
    roles=ADMIN,
    body=AdjustmentBody,
    idempotent=True,
    status=201,
    replay_status=200,
    response=Adjustment,
    summary="Post a manual ledger adjustment (Idempotency-Key header required)",
    step_up=True,
)
def adjust(ctx: Ctx) -> Reply:
    with get_db().transaction() as conn:
        result = service.adjust(conn, ctx.actor, ctx.body, ctx.idempotency_key)
        status = 200 if result["duplicate"] else 201
        # the key's answer commits with the entry and its audit row: a retry after a crash replays it
        idempotency.store_answer_in(conn, result, status)
    return Reply(result, status=status)


@router.route(
    "GET",
    "/adjustments",
    auth="staff",
    roles=READERS,
    query=AdjustmentLookupQuery,
    response=AdjustmentFound,
    summary="An adjustment by the Idempotency-Key it was posted with (404 adjustment_not_found: nothing committed)",
)
def adjustment_by_key(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.adjustment_by_key, ctx.query)


@router.route(
    "POST",
    "/users/{user_id}/entries/{entry_id}/reverse",
    auth="staff",
    roles=FINANCE,
    body=ReversalBody,
    response=Reversal,
    summary="Claw back a pending credit with a reversal entry (twice: no-op; already cleared: 409 not_pending)",
    step_up=True,
)
def reverse_entry(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.reverse_entry, ctx.params["user_id"], ctx.params["entry_id"], ctx.body.reason)


# --- payouts ---------------------------------------------------------------------------------------
@router.route(
    "GET",
    "/payouts",
    auth="staff",
    roles=FINANCE,
    query=PayoutReviewQuery,
    response=ReviewPayoutPage,
    summary="Payouts by status (default: awaiting approval)",
)
def payouts_for_review(ctx: Ctx) -> dict[str, Any]:
    return _read(service.payouts_for_review, ctx.query.status, ctx.query.limit, ctx.query.cursor)


@router.route(
    "GET", "/payouts/{payout_id}", auth="staff", roles=FINANCE, response=StaffPayoutDetail, summary="One payout with its event history"
)
def payout_detail(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.payout_detail, ctx.params["payout_id"])


@router.route(
    "POST",
    "/payouts/{payout_id}/approve",
    auth="staff",
    roles=FINANCE,
    idempotent=True,
    response=StaffPayout,
    summary="Approve a requested payout (an Idempotency-Key header replays a retried approval)",
    step_up=True,
)
def approve_payout(ctx: Ctx) -> dict[str, Any]:
    return _as_staff_replayable(ctx, service.approve_payout, ctx.params["payout_id"])


@router.route(
    "POST",
    "/payouts/{payout_id}/reject",
    auth="staff",
    roles=FINANCE,
    body=RejectBody,
    idempotent=True,
    response=StaffPayout,
    summary="Reject a requested payout (an Idempotency-Key header replays a retried rejection)",
    step_up=True,
)
def reject_payout(ctx: Ctx) -> dict[str, Any]:
    return _as_staff_replayable(ctx, service.reject_payout, ctx.params["payout_id"], ctx.body.reason)


# --- KYC -------------------------------------------------------------------------------------------
@router.route(
    "GET", "/kyc", auth="staff", roles=COMPLIANCE, query=KycQueueQuery, response=ReviewQueue, summary="Users waiting for a KYC decision"
)
def kyc_queue(ctx: Ctx) -> dict[str, Any]:
    return _read(service.kyc_queue, ctx.query.limit, ctx.query.cursor)


@router.route(
    "GET",
    "/kyc/{user_id}/documents",
    auth="staff",
    roles=COMPLIANCE,
    response=ReviewDocuments,
    summary="A user's KYC documents with short-lived download URLs",
)
def kyc_documents(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.kyc_documents, ctx.params["user_id"])


@router.route(
    "POST",
    "/kyc/{user_id}/decision",
    auth="staff",
    roles=COMPLIANCE,
    body=KycDecisionBody,
    response=KycDecision,
    summary="Record a KYC decision",
)
def kyc_decision(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.kyc_decide, ctx.params["user_id"], ctx.body.decision, ctx.body.reason)


# --- videos ----------------------------------------------------------------------------------------
@router.route("POST", "/videos", auth="staff", roles=ADMIN, body=VideoCreate, status=201, response=Video, summary="Create a video")
def create_video(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.create_video, ctx.body)


@router.route("GET", "/videos", auth="staff", roles=ADMIN, response=VideoList, summary="Every video, inactive ones too")
def list_videos(ctx: Ctx) -> dict[str, Any]:
    return _read(service.list_videos)


@router.route(
    "PATCH",
    "/videos/{video_id}",
    auth="staff",
    roles=ADMIN,
    body=VideoUpdate,
    response=Video,
    summary="Edit a video (fields left out keep their value; active: false deactivates it)",
)
def update_video(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.update_video, ctx.params["video_id"], ctx.body.model_dump(exclude_unset=True))


# --- feature flags ---------------------------------------------------------------------------------
@router.route("GET", "/flags", auth="staff", roles=ADMIN, response=FlagList, summary="Every feature flag")
def list_flags(ctx: Ctx) -> dict[str, Any]:
    return _read(service.list_flags)


@router.route("POST", "/flags/{key}", auth="staff", roles=ADMIN, body=FlagBody, response=Flag, summary="Create or change a feature flag")
def set_flag(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    return _as_staff(ctx, service.set_flag, ctx.params["key"], body.enabled, body.rollout_percent, body.description)


# --- trust and safety: the review queue (docs/fraud.md) -------------------------------------------------
@router.route(
    "GET",
    "/risk/queue",
    auth="staff",
    roles=READERS,
    query=RiskQueueQuery,
    response=RiskQueuePage,
    summary="Accounts in a risk state (default: review), longest waiting first, with their signals and scores",
)
def risk_queue(ctx: Ctx) -> dict[str, Any]:
    return _read(service.risk_queue, ctx.query)


@router.route(
    "GET",
    "/risk/users/{user_id}",
    auth="staff",
    roles=READERS,
    response=RiskCase,
    summary="One account's case: signals, linked accounts as a graph, referral tree, earning velocity, state history",
)
def risk_case(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.risk_case, ctx.params["user_id"])


@router.route(
    "POST",
    "/risk/users/{user_id}/decision",
    auth="staff",
    roles=COMPLIANCE,
    body=DecisionBody,
    response=Decision,
    summary="Clear, watch, review, suspend or ban an account, with a reason (ban: sessions revoked, pending earnings clawed back)",
)
def risk_decide(ctx: Ctx) -> dict[str, Any]:
    return _as_staff(ctx, service.risk_decide, ctx.params["user_id"], ctx.body.decision, ctx.body.reason)


@router.route("GET", "/risk/rules", auth="staff", roles=READERS, response=RuleList, summary="The risk rules: thresholds, windows, weights")
def risk_rules(ctx: Ctx) -> dict[str, Any]:
    return _read(service.risk_rules)


@router.route(
    "PUT",
    "/risk/rules/{name}",
    auth="staff",
    roles=ADMIN,
    body=RuleBody,
    response=Rule,
    summary="Change a risk rule's threshold, window and weight",
)
def risk_set_rule(ctx: Ctx) -> dict[str, Any]:
    body = ctx.body
    return _as_staff(ctx, service.risk_set_rule, ctx.params["name"], body.threshold, body.window_minutes, body.weight)


# --- the audit log ---------------------------------------------------------------------------------
@router.route(
    "GET", "/audit", auth="staff", roles=AUDITORS, query=AuditQuery, response=AuditPage, summary="The audit log, newest first, filtered"
)
def audit_log(ctx: Ctx) -> dict[str, Any]:
    # A report, not a decision: the replica serves it while it is at most AUDIT_MAX_LAG_S behind.
    return read_replica(lambda conn: service.audit_page(conn, ctx.query), max_lag_s=AUDIT_MAX_LAG_S)


# --- partners (functions/partners/admin_routes.py) ---------------------------------------------------
partner_admin.register(router)
