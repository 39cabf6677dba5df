"""HTTP routes of the ``payouts`` function (signed-in users; each sees only their own methods and payouts)."""

from __future__ import annotations

from typing import Any

from functions.payouts import flows, service
from functions.payouts.models import (
    MethodCreateBody,
    MethodRemoved,
    Payout,
    PayoutCreateBody,
    PayoutDetail,
    PayoutListQuery,
    PayoutMethod,
    PayoutMethodList,
    PayoutPage,
)
from functions.risk import signals
from shared.db import get_db
from shared.http import Ctx, Router

router = Router("payouts")

# Literal paths first: GET /methods must not be taken for GET /{payout_id}.


@router.route(
    "POST",
    "/methods",
    body=MethodCreateBody,
    status=201,
    response=PayoutMethod,
    summary="Add a payout method (PayPal or bank account); needs the password",
)
def add_method(ctx: Ctx) -> dict[str, Any]:
    return flows.add_method(get_db(), ctx.user_id, ctx.body)


@router.route("GET", "/methods", response=PayoutMethodList, summary="The signed-in user's payout methods, masked")
def list_methods(ctx: Ctx) -> dict[str, Any]:
    with get_db().connection() as conn:
        return service.list_methods(conn, ctx.user_id)


@router.route("POST", "/methods/{method_id}/default", response=PayoutMethod, summary="Make a payout method the default")
def set_default_method(ctx: Ctx) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return service.set_default_method(conn, ctx.user_id, ctx.params["method_id"])


@router.route(
    "DELETE",
    "/methods/{method_id}",
    response=MethodRemoved,
    summary="Remove a payout method (its details are destroyed); not while a payout to it is in flight",
)
def remove_method(ctx: Ctx) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return service.remove_method(conn, ctx.user_id, ctx.params["method_id"])


@router.route(
    "POST",
    "/",
    body=PayoutCreateBody,
    idempotent=True,
    status=201,
    response=Payout,
    summary="Request a payout (KYC-verified, active account, password); holds the amount at once",
)
def request_payout(ctx: Ctx) -> dict[str, Any]:
    client = (ctx.ip, ctx.request.headers.get(signals.INSTALL_ID_HEADER))
    payout, _created = flows.request_payout(get_db(), ctx.user_id, ctx.body, ctx.idempotency_key, client=client)
    return payout


@router.route("GET", "/", query=PayoutListQuery, response=PayoutPage, summary="The signed-in user's payouts, newest first")
def list_payouts(ctx: Ctx) -> dict[str, Any]:
    with get_db().connection() as conn:
        return service.list_payouts(conn, ctx.user_id, limit=ctx.query.limit, cursor=ctx.query.cursor, status=ctx.query.status)


@router.route("GET", "/{payout_id}", response=PayoutDetail, summary="One payout with its history")
def get_payout(ctx: Ctx) -> dict[str, Any]:
    with get_db().connection() as conn:
        return service.get_payout(conn, ctx.user_id, ctx.params["payout_id"])


@router.route("POST", "/{payout_id}/cancel", response=Payout, summary="Cancel a payout still awaiting approval; releases the hold")
def cancel_payout(ctx: Ctx) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return service.cancel_payout(conn, ctx.user_id, ctx.params["payout_id"])
