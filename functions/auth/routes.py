"""HTTP routes of the ``auth`` function."""

from __future__ import annotations

from typing import Any

from functions.auth import service
from functions.auth.models import LoginBody, LoginResponse, PasswordChangeBody, SessionPrincipal, SignupBody, SignupResponse, UserProfile
from functions.risk import signals
from shared.config import get_settings
from shared.db import get_db
from shared.http import Ctx, Reply, Router
from shared.models import Ok

router = Router("auth")


def _client(ctx: Ctx) -> service.ClientInfo:
    return service.ClientInfo(ip=ctx.ip, user_agent=ctx.user_agent, install_id=ctx.request.headers.get(signals.INSTALL_ID_HEADER))


@router.route(
    "POST",
    "/signup",
    auth=None,
    body=SignupBody,
    status=201,
    response=SignupResponse,
    summary="Create an account (optionally with a referral code) and sign in",
)
def signup(ctx: Ctx) -> dict[str, Any]:
    return service.signup(get_db(), ctx.body, _client(ctx), get_settings())


@router.route(
    "POST",
    "/login",
    auth=None,
    body=LoginBody,
    response=LoginResponse,
    summary="Sign in (bonuses accrue with verified watching, not with a login: bonus is always null)",
)
def login(ctx: Ctx) -> dict[str, Any]:
    return service.login(get_db(), ctx.body.email, ctx.body.password, _client(ctx), get_settings())


@router.route("POST", "/logout", response=Ok, summary="Revoke the current session")
def logout(ctx: Ctx) -> Reply:
    assert ctx.principal is not None
    service.logout(get_db(), ctx.principal.session_id)
    return Reply({"ok": True})


@router.route("GET", "/me", response=UserProfile, summary="The signed-in user's profile")
def me(ctx: Ctx) -> dict[str, Any]:
    assert ctx.principal is not None
    return service.me(get_db(), ctx.user_id, ctx.principal.profile_version)


@router.route("GET", "/session", response=SessionPrincipal, summary="The current session's principal (a cheap validity check for clients)")
def session(ctx: Ctx) -> dict[str, Any]:
    assert ctx.principal is not None
    return {"user_id": ctx.principal.user_id, "role": ctx.principal.role, "session_id": ctx.principal.session_id}


@router.route("POST", "/password", body=PasswordChangeBody, response=Ok, summary="Change the password; revokes every other session")
def change_password(ctx: Ctx) -> dict[str, Any]:
    assert ctx.principal is not None
    service.change_password(get_db(), ctx.user_id, ctx.principal.session_id, ctx.body.current_password, ctx.body.new_password)
    return {"ok": True}
