"""A deterministic in-memory payout provider for tests, local runs and the benchmark. It pays nobody.

Outcomes are a pure function of the configuration and the payout (never of call order or thread
timing), so concurrent tests are reproducible:

* ``fail_amount_suffixes``: a payout whose amount in cents ends with one of these digit strings fails
  (for example ``("13",)``: 1013 and 213 fail, 1012 pays).
* ``fail_payout_ids``: these payout ids fail.
* ``failure_rate`` with ``seed``: each payout id fails with this probability, decided by a RNG seeded
  with (seed, payout id).
* ``transient_failures``: the first N submits of each payout id in ``transient_payout_ids`` (or of every
  payout when that set is empty and N > 0) raise ProviderTransientError before anything is recorded.
* ``delay_s``: each call sleeps this long first (a slow network).
* ``pending``: submissions are accepted as ``pending`` and become final on ``get_status`` after
  ``settle_after_polls`` polls, or when ``settle()`` is called.

Exactly once: the first accepted submit of a payout id is recorded; later submits of that id return the
recorded result and never pay again. ``payment_count`` counts real payments (records that are, or became,
paid) so tests can assert that nothing was paid twice.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from functions.payouts.providers.base import (
    PayoutInstruction,
    PayoutNotFound,
    ProviderResult,
    ProviderTransientError,
    format_amount,
)
from shared.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class SandboxConfig:
    fail_amount_suffixes: tuple[str, ...] = ()
    fail_payout_ids: frozenset[str] = frozenset()
    failure_rate: float = 0.0
    seed: int = 0
    transient_failures: int = 0
    transient_payout_ids: frozenset[str] = frozenset()
    delay_s: float = 0.0
    pending: bool = False
    settle_after_polls: int = 1

    def __post_init__(self) -> None:
        if not 0.0 <= self.failure_rate <= 1.0:
            raise ValueError("failure_rate must be between 0 and 1")
        if any(not s.isdigit() for s in self.fail_amount_suffixes):
            raise ValueError("fail_amount_suffixes are strings of digits")
        if self.delay_s < 0 or self.transient_failures < 0 or self.settle_after_polls < 0:
            raise ValueError("delay, transient failures and polls must not be negative")


@dataclass
class SandboxRecord:
    """What the sandbox remembers per payout id (the first accepted submission)."""

    instruction: PayoutInstruction
    reference: str
    final_status: str  # "paid" or "failed": where this payout ends up
    failure_code: str | None
    settled: bool  # False while pending
    polls: int = 0
    submits: int = 1
    conflicting_resubmits: int = 0
    paid_at: float | None = None
    history: list[str] = field(default_factory=list)


class SandboxProvider:
    """Deterministic, thread-safe, idempotent per payout id."""

    name = "sandbox"

    def __init__(self, config: SandboxConfig | None = None, **overrides: Any) -> None:
        base = config or SandboxConfig()
        self.config = SandboxConfig(**{**base.__dict__, **overrides}) if overrides else base
        self._lock = threading.Lock()
        self._records: dict[str, SandboxRecord] = {}
        self._transient_seen: dict[str, int] = {}
        self._calls = 0
        self._seq = 0

    # --- the interface ---------------------------------------------------------------------------
    def submit(self, payout: PayoutInstruction) -> ProviderResult:
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        with self._lock:
            self._calls += 1
            record = self._records.get(payout.payout_id)
            if record is not None:
                record.submits += 1
                if (record.instruction.amount_cents, record.instruction.currency) != (payout.amount_cents, payout.currency):
                    # A real provider keys on the id alone and answers with the original payout; so do we.
                    record.conflicting_resubmits += 1
                    log.warning("sandbox payout resubmitted with different amount", extra={"payout_id": payout.payout_id})
                return self._result(record)
            if self._should_raise_transient(payout.payout_id):
                raise ProviderTransientError("sandbox: simulated timeout (nothing recorded)", status_code=503)
            self._seq += 1
            code = self._failure_code(payout)
            record = SandboxRecord(
                instruction=payout,
                reference=f"SBX-{self._seq:08d}",
                final_status="failed" if code else "paid",
                failure_code=code,
                settled=not self.config.pending,
            )
            record.history.append("submitted")
            if record.settled:
                self._settle(record)
            self._records[payout.payout_id] = record
            return self._result(record)

    def get_status(self, payout_id: str, provider_reference: str | None = None) -> ProviderResult:
        if self.config.delay_s:
            time.sleep(self.config.delay_s)
        with self._lock:
            self._calls += 1
            record = self._records.get(str(payout_id))
            if record is None or (provider_reference is not None and provider_reference != record.reference):
                raise PayoutNotFound(f"sandbox has no payout {payout_id}")
            if not record.settled:
                record.polls += 1
                if record.polls >= self.config.settle_after_polls:
                    self._settle(record)
            return self._result(record)

    # --- helpers for tests and local runs --------------------------------------------------------------
    def settle(self, payout_id: str | None = None) -> None:
        """Makes one pending payout (or all of them) final."""
        with self._lock:
            for pid, record in self._records.items():
                if (payout_id is None or pid == payout_id) and not record.settled:
                    self._settle(record)

    def reset(self) -> None:
        with self._lock:
            self._records.clear()
            self._transient_seen.clear()
            self._calls = 0

    @property
    def payment_count(self) -> int:
        """Real payments made (each payout id counts at most once, by construction)."""
        with self._lock:
            return sum(1 for r in self._records.values() if r.paid_at is not None)

    @property
    def calls(self) -> int:
        with self._lock:
            return self._calls

    def payments(self) -> dict[str, SandboxRecord]:
        """Paid payouts by payout id (a copy)."""
        with self._lock:
            return {pid: r for pid, r in self._records.items() if r.paid_at is not None}

    def record(self, payout_id: str) -> SandboxRecord | None:
        with self._lock:
            return self._records.get(payout_id)

    def submits_of(self, payout_id: str) -> int:
        with self._lock:
            record = self._records.get(payout_id)
            return record.submits if record else 0

    # --- internals --------------------------------------------------------------------------------------
    def _should_raise_transient(self, payout_id: str) -> bool:
        cfg = self.config
        if cfg.transient_failures <= 0 or (cfg.transient_payout_ids and payout_id not in cfg.transient_payout_ids):
            return False
        seen = self._transient_seen.get(payout_id, 0)
        if seen >= cfg.transient_failures:
            return False
        self._transient_seen[payout_id] = seen + 1
        return True

    def _failure_code(self, payout: PayoutInstruction) -> str | None:
        cfg = self.config
        if payout.payout_id in cfg.fail_payout_ids:
            return "sandbox_rejected_id"
        digits = str(payout.amount_cents)
        if any(digits.endswith(suffix) for suffix in cfg.fail_amount_suffixes):
            return "sandbox_rejected_amount"
        if cfg.failure_rate and random.Random(f"{cfg.seed}:{payout.payout_id}").random() < cfg.failure_rate:
            return "sandbox_random_failure"
        return None

    @staticmethod
    def _settle(record: SandboxRecord) -> None:
        record.settled = True
        if record.final_status == "paid" and record.paid_at is None:
            record.paid_at = time.time()
        record.history.append(record.final_status)

    @staticmethod
    def _result(record: SandboxRecord) -> ProviderResult:
        ins = record.instruction
        raw = {
            "provider": "sandbox",
            "reference": record.reference,
            "amount": format_amount(ins.amount_cents, ins.currency),
            "currency": ins.currency,
            "method_type": ins.method_type,
            "submits": record.submits,
        }
        if not record.settled:
            return ProviderResult("pending", record.reference, raw=raw)
        if record.final_status == "failed":
            return ProviderResult("failed", record.reference, record.failure_code, "sandbox: rejected by a configured failure rule", raw)
        return ProviderResult("paid", record.reference, raw=raw)


def config_from_env(env: Iterable[tuple[str, str]]) -> SandboxConfig:
    """Reads ``SANDBOX_PAYOUT_*`` variables (local runs configure failures without code).

    Deliberately not fields of ``shared.config.Settings``: they are failure-injection knobs of a fake
    provider that production refuses to build (``build_provider``), used only for local runs and tests,
    never set by Terraform. They are read when a sandbox provider is built (call time, not import time),
    and ``env`` is any iterable of pairs so tests can hand in a dict instead of touching the process env.
    """
    values = {k: v for k, v in env if k.startswith("SANDBOX_PAYOUT_") and v.strip()}

    def split(name: str) -> list[str]:
        return [p.strip() for p in values.get(name, "").split(",") if p.strip()]

    return SandboxConfig(
        fail_amount_suffixes=tuple(split("SANDBOX_PAYOUT_FAIL_SUFFIXES")),
        fail_payout_ids=frozenset(split("SANDBOX_PAYOUT_FAIL_IDS")),
        failure_rate=float(values.get("SANDBOX_PAYOUT_FAILURE_RATE", "0")),
        seed=int(values.get("SANDBOX_PAYOUT_SEED", "0")),
        transient_failures=int(values.get("SANDBOX_PAYOUT_TRANSIENT_FAILURES", "0")),
        delay_s=int(values.get("SANDBOX_PAYOUT_DELAY_MS", "0")) / 1000,
        pending=values.get("SANDBOX_PAYOUT_MODE", "").lower() == "pending",
        settle_after_polls=int(values.get("SANDBOX_PAYOUT_SETTLE_AFTER_POLLS", "1")),
    )
