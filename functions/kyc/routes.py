"""HTTP routes of the ``kyc`` function (signed-in users, their own documents only)."""

from __future__ import annotations

from typing import Any

from functions.kyc import service
from functions.kyc.models import DocumentsQuery, DocumentUploadBody, KycStatus, UploadTicket
from shared.db import get_db
from shared.http import Ctx, Router

router = Router("kyc")


@router.route(
    "POST",
    "/documents",
    body=DocumentUploadBody,
    idempotent=True,
    status=201,
    response=UploadTicket,
    summary="Start a document upload: returns a 15-minute V4 signed PUT URL and the headers to send with it",
)
def create_document(ctx: Ctx) -> dict[str, Any]:
    return get_db().run_in_transaction(lambda conn: service.request_upload(conn, ctx.user_id, ctx.body))


@router.route(
    "GET", "/", query=DocumentsQuery, response=KycStatus, summary="The user's KYC status, last decision and documents (newest first)"
)
def kyc_status(ctx: Ctx) -> dict[str, Any]:
    with get_db().connection() as conn:
        return service.status(conn, ctx.user_id, ctx.query.limit, ctx.query.cursor)
