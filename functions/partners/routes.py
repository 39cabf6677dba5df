"""HTTP routes of the ``partner_callbacks`` function: what rewarded-video networks and offerwalls call.

Public (partners authenticate by signature, not session). The answer is the partner's own protocol
(its configured body and content type, e.g. ``1``/``0`` or JSON), not our JSON shape, except for an
unknown partner (404) and throttling (429), where no partner's protocol applies.
"""

from __future__ import annotations

import flask
from pydantic import ConfigDict

from functions.partners import service
from shared.http import Ctx, Router
from shared.models import QueryParams

router = Router("partner_callbacks")


class SignedQuery(QueryParams):
    """Any parameters: the signature covers them, and the service reads the raw query string."""

    model_config = ConfigDict(extra="allow", frozen=True)


def _answer(ctx: Ctx, kind: str) -> flask.Response:
    query = ctx.request.query_string.decode("utf-8", "replace")
    answer = service.handle(kind, ctx.params["partner_id"], query, ctx.ip)
    resp = flask.Response(answer.body, status=answer.status, content_type=f"{answer.content_type}; charset=utf-8")
    resp.headers["X-EarnPay-Callback-Outcome"] = answer.outcome
    resp.headers["X-EarnPay-Callback-Reason"] = answer.reason
    return resp


@router.route(
    "GET",
    "/rewarded-video/{partner_id}",
    auth=None,
    query=SignedQuery,
    summary="AdMob-style rewarded-video server-side verification (ECDSA P-256 over the query string; docs/partners.md)",
)
def rewarded_video(ctx: Ctx) -> flask.Response:
    return _answer(ctx, "rewarded_video")


@router.route(
    "GET",
    "/offerwall/{partner_id}",
    auth=None,
    query=SignedQuery,
    summary="Offerwall postback: a credit or a reversal, HMAC-SHA256 over the canonical parameters (docs/partners.md)",
)
def offerwall(ctx: Ctx) -> flask.Response:
    return _answer(ctx, "offerwall")
