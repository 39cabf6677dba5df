"""Request models of the auth function."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from shared.models import Body, collapse_whitespace

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
