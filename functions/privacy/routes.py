"""HTTP routes of the ``privacy`` function: a user's data export and erasure (their own only)."""

from __future__ import annotations

from typing import Any

from functions.privacy import flows, service
from functions.privacy.models import EraseBody, Erased, ExportRequested, ExportStatus
from shared.db import get_db
from shared.http import Ctx, Reply, Router

router = Router("privacy")


@router.route(
    "POST", "/export", response=ExportRequested, statuses=(202,), summary="Ask for an export of all your data (202 while it is being built)"
)
def request_export(ctx: Ctx) -> Reply:
    export, created = flows.request_export(get_db(), ctx.user_id)
    status = 200 if export["status"] == "ready" else 202
    return Reply({**export, "created": created}, status=status)


@router.route("GET", "/export/{export_id}", response=ExportStatus, summary="An export's status and, when ready, a 15-minute download URL")
def get_export(ctx: Ctx) -> dict[str, Any]:
    with get_db().connection() as conn:
        return service.get_export(conn, ctx.user_id, ctx.params["export_id"])


@router.route(
    "POST", "/erase", body=EraseBody, response=Erased, summary="Erase your personal data (password and confirm: ERASE); irreversible"
)
def erase(ctx: Ctx) -> dict[str, Any]:
    return flows.erase(get_db(), ctx.user_id, ctx.body.password, request_id=ctx.request_id)
