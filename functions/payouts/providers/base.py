"""The payout provider interface: what the batch worker hands a provider, and what it gets back.

Contract (every provider keeps it):

* ``submit`` is idempotent per ``payout_id``: submitting the same id again (after a crash, a timeout or
  a retry) never moves money twice; it answers with the state of the first submission.
* A returned result with ``status == "failed"`` is definitive: the money did not and will not move, so
  the caller may release the hold. Anything that *might* have moved money is ``"pending"`` or ``"paid"``.
* ``ProviderTransientError`` means "unknown, try again later with the SAME payout id" (timeouts,
  connection errors, HTTP 5xx/429). It never means failed: the caller must keep the hold.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

PayoutStatus = Literal["paid", "pending", "failed"]
MethodType = Literal["paypal", "bank_account"]

PAYOUT_STATUSES: frozenset[str] = frozenset({"paid", "pending", "failed"})
METHOD_TYPES: frozenset[str] = frozenset({"paypal", "bank_account"})
# The product pays US dollars only, in whole cents (the ledger is USD; a payout request has no currency).
CURRENCY = "USD"


def format_amount(amount_cents: int, currency: str) -> str:
    """Integer cents of USD -> the exact decimal string, never through a float: (1234, "USD") -> "12.34"."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise TypeError("amounts are integers of cents")
    if amount_cents < 0:
        raise ValueError("amount must not be negative")
    if currency != CURRENCY:
        raise ValueError(f"payouts are paid in {CURRENCY} only, not {currency!r}")
    whole, frac = divmod(amount_cents, 100)
    return f"{whole}.{frac:02d}"


class ProviderError(Exception):
    """Base class of provider errors."""


class ProviderTransientError(ProviderError):
    """The outcome is unknown or the provider is unavailable: retry later with the same payout id."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, status_code: int | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.status_code = status_code


class PayoutNotFound(ProviderError):
    """``get_status`` found no submission for this payout: it was never submitted (submit it, same id, to pay it)."""


class ProviderConfigError(ProviderTransientError):
    """The provider is misconfigured (missing or rejected credentials, no permission, wrong URL): an operator must act.

    A transient error for callers on purpose: nothing was paid, retrying later with the same id is safe, and a
    configuration mistake must never release users' holds as if their payouts had failed. Log it at ERROR.
    """


@dataclass(frozen=True)
class PayoutInstruction:
    """One payout as a provider sees it. ``destination`` holds decrypted details and never appears in repr."""

    payout_id: str
    amount_cents: int
    currency: str
    method_type: MethodType
    destination: dict[str, Any] = field(repr=False)
    note: str = ""

    def __post_init__(self) -> None:
        try:
            canonical = str(uuid.UUID(str(self.payout_id)))
        except ValueError as exc:
            raise ValueError("payout_id must be a UUID") from exc
        object.__setattr__(self, "payout_id", canonical)
        if isinstance(self.amount_cents, bool) or not isinstance(self.amount_cents, int) or self.amount_cents <= 0:
            raise ValueError("amount_cents must be a positive integer")
        if self.currency != CURRENCY:
            raise ValueError(f"currency must be {CURRENCY}: the product pays US dollars only")
        if self.method_type not in METHOD_TYPES:
            raise ValueError(f"method_type must be one of {sorted(METHOD_TYPES)}")
        if not isinstance(self.destination, dict):
            raise ValueError("destination must be a dict of decrypted payout details")


@dataclass(frozen=True)
class ProviderResult:
    """What the provider said. ``raw`` is the provider's answer with personal data masked (safe to store)."""

    status: PayoutStatus
    provider_reference: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in PAYOUT_STATUSES:
            raise ValueError(f"status must be one of {sorted(PAYOUT_STATUSES)}")
        if self.status == "failed" and not self.failure_code:
            raise ValueError("a failed result needs a failure_code")

    @property
    def is_final(self) -> bool:
        return self.status != "pending"


@runtime_checkable
class PayoutProvider(Protocol):
    """A payout provider. Implementations are thread-safe; one instance serves a whole process."""

    name: str

    def submit(self, payout: PayoutInstruction) -> ProviderResult:
        """Pays ``payout`` once (idempotent per payout_id); raises ProviderTransientError when the outcome is unknown."""
        ...

    def get_status(self, payout_id: str, provider_reference: str | None) -> ProviderResult:
        """The current state of an earlier submission (to reconcile ``pending`` ones)."""
        ...
