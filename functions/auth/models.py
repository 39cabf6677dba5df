"""Request and response models of the auth function."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from shared.models import Body, Money, Response, collapse_whitespace

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


class SignupResponse(Response):
    user: UserProfile
    session: SessionToken


class LoginResponse(Response):
    user: UserProfile
    session: SessionToken
    bonus: LoginBonus | None = Field(
        description="always null: a bare login earns nothing; the daily and streak bonuses accrue with the day's first"
        " completed video (the completing heartbeat's daily_bonus)"
    )


class SessionPrincipal(Response):
    user_id: str
    role: RoleName
    session_id: int
