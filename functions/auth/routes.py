"""HTTP routes of the ``auth`` function."""

from __future__ import annotations

from typing import Any

from functions.auth import flows, mfa, service
from functions.auth.models import (
    Accepted,
    EmailChangeBody,
    LoginBody,
    LoginResponse,
    MfaCodeBody,
    MfaEnrolment,
    NotificationPage,
    NotificationsQuery,
    PasswordChangeBody,
    PasswordForgotBody,
    PasswordResetBody,
    RecoveryCodes,
    SessionPrincipal,
    SignupBody,
    TokenBody,
    UserProfile,
    VerifiedResponse,
)
from functions.notifications import service as notifications
from functions.risk import signals
from shared import error_codes as codes
from shared.config import get_settings
from shared.db import get_db
from shared.errors import Forbidden
from shared.http import Ctx, Reply, Router
from shared.models import Ok
from shared.sessions import STAFF_ROLES

router = Router("auth", console_cors=True)  # the staff console calls it from its own origin (CONSOLE_ORIGINS)


def _client(ctx: Ctx) -> service.ClientInfo:
    return service.ClientInfo(ip=ctx.ip, user_agent=ctx.user_agent, install_id=ctx.request.headers.get(signals.INSTALL_ID_HEADER))


@router.route(
    "POST",
    "/signup",
    auth=None,
    body=SignupBody,
    status=202,
    response=Accepted,
    summary="Create an account (optionally with a referral code); the emailed link verifies it and signs in",
)
def signup(ctx: Ctx) -> dict[str, Any]:
    return flows.signup(get_db(), ctx.body, _client(ctx), get_settings())


@router.route(
    "POST",
    "/email/verify",
    auth=None,
    body=TokenBody,
    response=VerifiedResponse,
    summary="Verify the address with the token of the sign-up link; answers a new session",
)
def verify_email(ctx: Ctx) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return service.verify_email(conn, ctx.body.token, _client(ctx), get_settings())


@router.route("POST", "/email/verification", status=202, response=Accepted, summary="Send the verification link again (throttled)")
def resend_verification(ctx: Ctx) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return service.resend_verification(conn, ctx.user_id)


@router.route(
    "POST",
    "/email/change",
    body=EmailChangeBody,
    status=202,
    response=Accepted,
    summary="Ask to change the address: a link goes to the new one, which takes effect when it is used",
)
def request_email_change(ctx: Ctx) -> dict[str, Any]:
    return flows.request_email_change(get_db(), ctx.user_id, ctx.body.new_email, ctx.body.password)


@router.route(
    "POST",
    "/email/change/confirm",
    auth=None,
    body=TokenBody,
    response=VerifiedResponse,
    summary="Confirm a new address with the token of its link (the old address is told)",
)
def confirm_email_change(ctx: Ctx) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return service.confirm_email_change(conn, ctx.body.token)


@router.route(
    "POST",
    "/login",
    auth=None,
    body=LoginBody,
    response=LoginResponse,
    summary="Sign in (bonuses accrue with verified watching, not with a login: bonus is always null)",
)
def login(ctx: Ctx) -> dict[str, Any]:
    return flows.login(get_db(), ctx.body.email, ctx.body.password, _client(ctx), get_settings(), ctx.body.mfa_code)


@router.route("POST", "/logout", response=Ok, summary="Revoke the current session")
def logout(ctx: Ctx) -> Reply:
    assert ctx.principal is not None
    with get_db().connection() as conn:
        service.logout(conn, ctx.principal.session_id)
    return Reply({"ok": True})


@router.route("GET", "/me", response=UserProfile, summary="The signed-in user's profile")
def me(ctx: Ctx) -> dict[str, Any]:
    assert ctx.principal is not None
    cached = service.cached_profile(ctx.user_id, ctx.principal.profile_version)
    if cached is not None:
        return cached
    with get_db().connection() as conn:
        return service.me(conn, ctx.user_id, ctx.principal.profile_version)


@router.route("GET", "/session", response=SessionPrincipal, summary="The current session's principal (a cheap validity check for clients)")
def session(ctx: Ctx) -> dict[str, Any]:
    p = ctx.principal
    assert p is not None
    return {"user_id": p.user_id, "role": p.role, "session_id": p.session_id, "mfa": p.mfa, "stepped_up": p.stepped_up}


@router.route("POST", "/password", body=PasswordChangeBody, response=Ok, summary="Change the password; revokes every other session")
def change_password(ctx: Ctx) -> dict[str, Any]:
    assert ctx.principal is not None
    flows.change_password(get_db(), ctx.user_id, ctx.principal.session_id, ctx.body.current_password, ctx.body.new_password)
    return {"ok": True}


@router.route(
    "POST",
    "/password/forgot",
    auth=None,
    body=PasswordForgotBody,
    status=202,
    response=Accepted,
    summary="Email a reset link (the same answer whether or not the address has an account)",
)
def forgot_password(ctx: Ctx) -> dict[str, Any]:
    with get_db().transaction() as conn:
        return service.forgot_password(conn, ctx.body.email, _client(ctx))


@router.route(
    "POST",
    "/password/reset",
    auth=None,
    body=PasswordResetBody,
    response=Ok,
    summary="Set a new password with the token of the reset link; revokes every session",
)
def reset_password(ctx: Ctx) -> dict[str, Any]:
    flows.reset_password(get_db(), ctx.body.token, ctx.body.new_password)
    return {"ok": True}


# --- two-factor (staff) ------------------------------------------------------------------------------
def _staff(ctx: Ctx) -> None:
    assert ctx.principal is not None
    if ctx.principal.role not in STAFF_ROLES:
        raise Forbidden("two-factor authentication is for staff accounts", code=codes.ROLE_FORBIDDEN)


@router.route("POST", "/mfa/enrol", response=MfaEnrolment, summary="Staff: start two-factor enrolment (secret, otpauth URI, QR code)")
def mfa_enrol(ctx: Ctx) -> dict[str, Any]:
    _staff(ctx)
    with get_db().transaction() as conn:
        return mfa.begin(conn, ctx.user_id)


@router.route(
    "POST",
    "/mfa/confirm",
    body=MfaCodeBody,
    response=RecoveryCodes,
    summary="Staff: finish enrolment with the first code; answers the 10 recovery codes once",
)
def mfa_confirm(ctx: Ctx) -> dict[str, Any]:
    _staff(ctx)
    assert ctx.principal is not None
    return {"recovery_codes": flows.confirm_mfa(get_db(), ctx.user_id, ctx.principal.session_id, ctx.body.code, get_settings())}


@router.route(
    "POST", "/mfa/step-up", body=MfaCodeBody, response=Ok, summary="Staff: enter a code; money moves are allowed for the next 5 minutes"
)
def mfa_step_up(ctx: Ctx) -> dict[str, Any]:
    _staff(ctx)
    assert ctx.principal is not None
    flows.step_up(get_db(), ctx.user_id, ctx.principal.session_id, ctx.body.code, get_settings())
    return {"ok": True}


# --- notifications -----------------------------------------------------------------------------------
@router.route("GET", "/notifications", query=NotificationsQuery, response=NotificationPage, summary="What we told you, newest first")
def list_notifications(ctx: Ctx) -> dict[str, Any]:
    with get_db().connection() as conn:
        return notifications.list_for_user(conn, ctx.user_id, limit=ctx.query.limit, before=ctx.query.before)
