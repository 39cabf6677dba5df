"""HTTP routes of the ``earnings`` function: history, stats and export of the signed-in user's ledger."""

from __future__ import annotations

from typing import Any

import flask

from functions.earnings import service
from functions.earnings.models import Export, HistoryPage, HistoryQuery, Stats
from shared.db import get_db
from shared.http import Ctx, Router, json_response

router = Router("earnings")


@router.route(
    "GET", "/", query=HistoryQuery, response=HistoryPage, summary="Earnings history, newest first (keyset-paginated; type and date filters)"
)
def history(ctx: Ctx) -> flask.Response:
    return json_response(service.own_read(ctx.user_id, lambda conn: service.history(conn, ctx.user_id, ctx.query)))


@router.route("GET", "/stats", response=Stats, summary="Available balance, lifetime totals, today / 7-day / 30-day sums by type")
def stats(ctx: Ctx) -> dict[str, Any]:
    with get_db().connection() as conn:
        return service.stats(conn, ctx.user_id)


@router.route("GET", "/export", response=Export, summary="The whole earnings history in one response")
def export(ctx: Ctx) -> flask.Response:
    return json_response(service.own_read(ctx.user_id, lambda conn: service.export(conn, ctx.user_id)))
