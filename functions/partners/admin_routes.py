"""The staff routes of partners (configuration, secrets, chargebacks, callbacks, the finance report).

Registered on the ``admin`` function's router (``register``), so the role matrix and the audit log
cover them like every other admin route: admin configures partners; finance reads them, enters
chargebacks and reads the report.
"""

from __future__ import annotations

from typing import Any

from functions.partners import service
from functions.partners.models import (
    CallbackList,
    CallbacksQuery,
    Partner,
    PartnerCreate,
    PartnerList,
    PartnerReport,
    PartnerReversalBody,
    PartnerReward,
    PartnerUpdate,
    ReportQuery,
    SecretBody,
    SecretRotated,
)
from shared.db import get_db
from shared.http import Ctx, Router

FINANCE = ("finance", "admin")
ADMIN = ("admin",)


def register(router: Router) -> None:
    """Adds the partner routes to the admin router."""

    @router.route("GET", "/partners", auth="staff", roles=FINANCE, response=PartnerList, summary="Every partner and its configuration")
    def list_partners(ctx: Ctx) -> dict[str, Any]:
        with get_db().transaction() as conn:
            return service.list_partners(conn)

    @router.route("POST", "/partners", auth="staff", roles=ADMIN, body=PartnerCreate, status=201, response=Partner, summary="Add a partner")
    def create_partner(ctx: Ctx) -> dict[str, Any]:
        with get_db().transaction() as conn:
            return service.create_partner(conn, ctx.actor, ctx.body.model_dump())

    @router.route(
        "POST",
        "/partners/{partner_id}",
        auth="staff",
        roles=ADMIN,
        body=PartnerUpdate,
        response=Partner,
        summary="Change a partner: rates, caps, clearing period, answers, enable switch",
    )
    def update_partner(ctx: Ctx) -> dict[str, Any]:
        with get_db().transaction() as conn:
            return service.update_partner(conn, ctx.actor, ctx.params["partner_id"], ctx.body.model_dump(exclude_unset=True))

    @router.route(
        "POST",
        "/partners/{partner_id}/secrets",
        auth="staff",
        roles=ADMIN,
        body=SecretBody,
        status=201,
        response=SecretRotated,
        summary="Rotate an offerwall's signing secret (the previous ones verify for overlap_hours)",
    )
    def rotate_secret(ctx: Ctx) -> dict[str, Any]:
        with get_db().transaction() as conn:
            return service.rotate_secret(conn, ctx.actor, ctx.params["partner_id"], ctx.body.secret_hex, ctx.body.overlap_hours)

    @router.route(
        "POST",
        "/partners/{partner_id}/reversals",
        auth="staff",
        roles=FINANCE,
        body=PartnerReversalBody,
        response=PartnerReward,
        summary="Enter a partner's chargeback: claw back while pending, else a recovery (twice: no-op)",
    )
    def partner_reversal(ctx: Ctx) -> dict[str, Any]:
        with get_db().transaction() as conn:
            return service.staff_reversal(conn, ctx.actor, ctx.params["partner_id"], ctx.body.transaction_id, ctx.body.reason)

    @router.route(
        "GET",
        "/partners/{partner_id}/callbacks",
        auth="staff",
        roles=FINANCE,
        query=CallbacksQuery,
        response=CallbackList,
        summary="A partner's recent callbacks, applied or refused, with their reasons",
    )
    def partner_callbacks(ctx: Ctx) -> dict[str, Any]:
        with get_db().transaction() as conn:
            return service.callbacks(conn, ctx.params["partner_id"], ctx.query.limit, ctx.query.before_id)

    @router.route(
        "GET",
        "/partner-report",
        auth="staff",
        roles=FINANCE,
        query=ReportQuery,
        response=PartnerReport,
        summary="Finance: per partner, per UTC day: revenue, rewards credited, reversed, paid out, margin",
    )
    def partner_report(ctx: Ctx) -> dict[str, Any]:
        with get_db().transaction() as conn:
            return service.report(conn, ctx.query.from_, ctx.query.to, ctx.query.partner_id)
