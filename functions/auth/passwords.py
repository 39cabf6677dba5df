"""Password hashing with argon2id (argon2-cffi), at or above the OWASP/ASVS minimum."""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shared.config import get_settings


@functools.lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    s = get_settings()
    return PasswordHasher(time_cost=s.argon2_time_cost, memory_cost=s.argon2_memory_kib, parallelism=s.argon2_parallelism)


@functools.lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return hasher().hash("not-a-real-password-used-to-equalise-timing")


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify(stored: str | None, password: str) -> bool:
    """True when ``password`` matches; an unknown user costs the same time as a wrong password."""
    try:
        return hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    """True when the stored hash was made with weaker parameters than the configured ones."""
    try:
        return hasher().check_needs_rehash(stored)
    except InvalidHashError:
        return True
