"""Request and response models of the auth function."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from shared.models import Body, Money, QueryParams, Response, collapse_whitespace

_EMAIL = re.compile(r"^[^@\s]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+$")


def normalise_email(value: str) -> str:
    value = value.strip().lower()
    if len(value) > 254 or not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


Email = Annotated[str, Field(min_length=3, max_length=254), AfterValidator(normalise_email)]
# Long passphrases welcome; the cap keeps argon2's input bounded.
Password = Annotated[str, Field(min_length=10, max_length=128)]
DisplayName = Annotated[str, Field(min_length=1, max_length=80), AfterValidator(collapse_whitespace)]
ReferralCode = Annotated[str, Field(min_length=8, max_length=8, pattern=r"^[23456789ABCDEFGHJKMNPQRSTUVWXYZabcdefghjkmnpqrstuvwxyz]{8}$")]


class SignupBody(Body):
    email: Email
    password: Password
    display_name: DisplayName
    referral_code: ReferralCode | None = None


class LoginBody(Body):
    email: Annotated[str, Field(min_length=1, max_length=320)]
    password: Annotated[str, Field(min_length=1, max_length=128)]
    mfa_code: Annotated[str, Field(min_length=6, max_length=16)] | None = Field(
        None, description="staff with two-factor on: the authenticator's 6-digit code, or a recovery code"
    )


Token = Annotated[str, Field(min_length=1, max_length=256, description="the token from the emailed link")]


class TokenBody(Body):
    token: Token


class EmailChangeBody(Body):
    new_email: Email
    password: Annotated[str, Field(min_length=1, max_length=128, description="the current password")]


class PasswordForgotBody(Body):
    email: Email


class PasswordResetBody(Body):
    token: Token
    new_password: Password


class MfaCodeBody(Body):
    code: Annotated[str, Field(min_length=6, max_length=16, description="a 6-digit code, or a recovery code (step-up only)")]


class NotificationsQuery(QueryParams):
    limit: int = Field(50, ge=1, le=100)
    before: int | None = Field(None, ge=1, le=2**63 - 1, description="the next_before of the previous page")


class PasswordChangeBody(Body):
    current_password: Annotated[str, Field(min_length=1, max_length=128)]
    new_password: Password


# --- responses ---------------------------------------------------------------------------------------
# The values the schema's CHECK constraints allow (migration 0001).
KycState = Literal["none", "pending", "in_review", "verified", "rejected"]
AccountStatus = Literal["active", "suspended", "blocked", "erased"]
RoleName = Literal["user", "support", "finance", "compliance", "admin"]


class UserProfile(Response):
    """The signed-in user's account (GET /auth/me, and in the sign-up and login answers)."""

    id: str
    email: str
    display_name: str
    referral_code: str
    referred_by: str | None = Field(description="the referrer's user id, if any")
    kyc_status: KycState
    role: RoleName
    status: AccountStatus
    email_verified: bool = Field(description="false until the link sent to the address was used; payouts need true")
    created_at: dt.datetime


class SessionToken(Response):
    token: str = Field(description="send as Authorization: Bearer <token>")
    token_type: Literal["Bearer"]
    expires_at: dt.datetime


class BonusCredit(Response):
    type: str
    amount: Money
    entry_id: int


class LoginBonus(Response):
    """The daily login and streak bonuses credited by the first login of a UTC day."""

    date: dt.date
    streak_days: int
    credited: list[BonusCredit]
    total: Money
    balance: Money | None = Field(description="the available balance after the bonuses; null when nothing was posted")


class Accepted(Response):
    """The same answer whether or not an account exists for the address (no enumeration)."""

    status: Literal["accepted"]
    message: str


class VerifiedResponse(Response):
    user: UserProfile
    session: SessionToken | None = Field(description="a new session (email verification at sign-up); null for an email change")


class LoginResponse(Response):
    user: UserProfile
    session: SessionToken
    bonus: LoginBonus | None = Field(
        description="always null: a bare login earns nothing; the daily and streak bonuses accrue with the day's first"
        " completed video (the completing heartbeat's daily_bonus)"
    )
    mfa: Literal["verified", "enrolment_required", "not_required"] = Field(
        description="staff: verified (a code was given) or enrolment_required (no staff route answers until enrolled)"
    )


class MfaEnrolment(Response):
    secret: str = Field(description="the TOTP secret (base32), for entering by hand")
    otpauth_uri: str = Field(description="otpauth://totp/... for authenticator apps")
    qr_svg: str = Field(description="the otpauth URI as a QR code (SVG document)")


class RecoveryCodes(Response):
    recovery_codes: list[str] = Field(description="10 single-use codes, shown this once")


class NotificationData(Response):
    """What a notification is about: the fields its kind uses, the others null."""

    payout_id: str | None = None
    amount: Money | None = None
    reason: str | None = None
    decision: str | None = None
    new_email: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    state: str | None = None


NotificationKind = Literal[
    "verify_email",
    "signup_attempt",
    "reset_password",
    "change_email",
    "email_changed",
    "password_changed",
    "new_device",
    "payout_paid",
    "payout_failed",
    "kyc_decided",
    "mfa_reset",
    "account_review",
]


class NotificationItem(Response):
    id: int
    kind: NotificationKind
    data: NotificationData
    created_at: dt.datetime
    emailed_at: dt.datetime | None


class NotificationPage(Response):
    items: list[NotificationItem]
    next_before: int | None


class SessionPrincipal(Response):
    user_id: str
    role: RoleName
    session_id: int
    mfa: bool = Field(description="the session passed the second factor")
    stepped_up: bool = Field(description="a code was entered recently enough for money moves")
