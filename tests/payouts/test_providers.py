"""Payout providers: the sandbox's determinism and exactly-once, and the PayPal adapter against a local stand-in."""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from functions.payouts.providers import (
    PayoutInstruction,
    PayoutNotFound,
    PayoutProvider,
    ProviderConfigError,
    ProviderResult,
    ProviderTransientError,
    SandboxConfig,
    SandboxProvider,
    build_provider,
    format_amount,
    get_provider,
    set_provider,
)
from functions.payouts.providers.paypal import PayPalProvider
from shared.config import get_settings
from tests.fixtures.paypal_standin import CLIENT_ID, CLIENT_SECRET, PayPalStandIn


def pid() -> str:
    return str(uuid.uuid4())


def paypal_payout(
    email: str = "alice@example.com", amount: int = 1234, payout_id: str | None = None, currency: str = "USD"
) -> PayoutInstruction:
    return PayoutInstruction(payout_id or pid(), amount, currency, "paypal", {"email": email}, note="EarnPay payout")


def bank_payout(amount: int = 5000) -> PayoutInstruction:
    return PayoutInstruction(pid(), amount, "USD", "bank_account", {"iban": "DE89370400440532013000", "holder_name": "A B"})


def run_threads(n: int, fn: Any) -> list[Any]:
    """Runs ``fn`` in ``n`` threads released together; returns results (or raised exceptions) in thread order."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def worker(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn()
        except Exception as exc:
            out[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return out


# --- the value objects -----------------------------------------------------------------------------
@pytest.mark.parametrize(("cents", "text"), [(1, "0.01"), (10, "0.10"), (100, "1.00"), (1234, "12.34"), (123456789, "1234567.89")])
def test_format_amount_is_exact(cents: int, text: str) -> None:
    assert format_amount(cents, "USD") == text


def test_format_amount_refuses_other_currencies_and_non_integers() -> None:
    for currency in ("EUR", "JPY", "usd"):
        with pytest.raises(ValueError):
            format_amount(1234, currency)  # the product pays US dollars only
    with pytest.raises(TypeError):
        format_amount(12.34, "USD")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_amount(True, "USD")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"payout_id": "not-a-uuid"},
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"amount_cents": 12.5},
        {"amount_cents": True},
        {"currency": "usd"},
        {"currency": "EUR"},
        {"method_type": "card"},
    ],
)
def test_payout_instruction_validates(kwargs: dict[str, Any]) -> None:
    base: dict[str, Any] = {"payout_id": pid(), "amount_cents": 100, "currency": "USD", "method_type": "paypal", "destination": {}}
    with pytest.raises(ValueError):
        PayoutInstruction(**{**base, **kwargs})


def test_instruction_repr_hides_destination() -> None:
    assert "secret@example.com" not in repr(paypal_payout("secret@example.com"))


def test_failed_result_needs_a_code() -> None:
    with pytest.raises(ValueError):
        ProviderResult("failed")
    with pytest.raises(ValueError):
        ProviderResult("done")  # type: ignore[arg-type]


# --- sandbox -----------------------------------------------------------------------------------------
def test_sandbox_rules_are_deterministic() -> None:
    fail_id = pid()
    cfg = SandboxConfig(fail_amount_suffixes=("13",), fail_payout_ids=frozenset({fail_id}), failure_rate=0.3, seed=7)
    ids = [pid() for _ in range(200)]

    def outcomes(order: list[str]) -> dict[str, str]:
        sandbox = SandboxProvider(cfg)
        return {i: sandbox.submit(paypal_payout(amount=1000, payout_id=i)).status for i in order}

    first, again = outcomes(ids), outcomes(list(reversed(ids)))
    assert first == again  # a function of (seed, payout id), not of call order
    failures = sum(1 for s in first.values() if s == "failed")
    assert 30 <= failures <= 90  # ~30% of 200

    sandbox = SandboxProvider(cfg)
    assert sandbox.submit(paypal_payout(amount=1013)).failure_code == "sandbox_rejected_amount"
    assert sandbox.submit(paypal_payout(amount=213)).status == "failed"
    assert sandbox.submit(paypal_payout(amount=1012, payout_id=fail_id)).failure_code == "sandbox_rejected_id"
    assert SandboxProvider().submit(paypal_payout(amount=1013)).status == "paid"
    assert SandboxProvider().submit(bank_payout()).status == "paid"


def test_sandbox_pays_each_payout_id_once() -> None:
    sandbox = SandboxProvider()
    payout = paypal_payout()
    first = sandbox.submit(payout)
    assert first.status == "paid" and first.provider_reference
    for _ in range(3):
        assert sandbox.submit(payout) == ProviderResult(
            "paid", first.provider_reference, raw={**first.raw, "submits": sandbox.submits_of(payout.payout_id)}
        )
    assert sandbox.payment_count == 1 and sandbox.submits_of(payout.payout_id) == 4
    # The same id with another amount is a bug upstream; like PayPal we answer with the original payout.
    changed = PayoutInstruction(payout.payout_id, 999, "USD", "paypal", {"email": "x@example.com"})
    assert sandbox.submit(changed).provider_reference == first.provider_reference
    assert sandbox.payment_count == 1
    assert sandbox.record(payout.payout_id).conflicting_resubmits == 1  # type: ignore[union-attr]
    assert sandbox.get_status(payout.payout_id, first.provider_reference).status == "paid"
    with pytest.raises(PayoutNotFound):
        sandbox.get_status(pid(), None)


def test_sandbox_exactly_once_under_20_threads() -> None:
    sandbox = SandboxProvider(delay_s=0.01)
    payout = paypal_payout()
    results = run_threads(20, lambda: sandbox.submit(payout))
    assert all(isinstance(r, ProviderResult) and r.status == "paid" for r in results)
    assert len({r.provider_reference for r in results}) == 1
    assert sandbox.payment_count == 1 and sandbox.submits_of(payout.payout_id) == 20

    # Many ids from many threads at once: one payment per id, none lost.
    fast = SandboxProvider()
    ids = [pid() for _ in range(50)]
    run_threads(20, lambda: [fast.submit(paypal_payout(payout_id=i)) for i in ids])
    assert fast.payment_count == 50 and set(fast.payments()) == set(ids) and fast.calls == 1000


def test_sandbox_transient_failures_then_success_pays_once() -> None:
    payout = paypal_payout()
    sandbox = SandboxProvider(transient_failures=2, transient_payout_ids=frozenset({payout.payout_id}))
    for _ in range(2):
        with pytest.raises(ProviderTransientError):
            sandbox.submit(payout)
    assert sandbox.payment_count == 0
    assert sandbox.submit(payout).status == "paid"
    assert sandbox.submit(paypal_payout()).status == "paid"  # other ids are unaffected
    assert sandbox.payment_count == 2


def test_sandbox_pending_mode_settles_on_poll() -> None:
    sandbox = SandboxProvider(pending=True, settle_after_polls=2, fail_amount_suffixes=("99",))
    ok, bad = paypal_payout(amount=500), paypal_payout(amount=599)
    r_ok, r_bad = sandbox.submit(ok), sandbox.submit(bad)
    assert (r_ok.status, r_bad.status) == ("pending", "pending") and sandbox.payment_count == 0
    assert sandbox.get_status(ok.payout_id, r_ok.provider_reference).status == "pending"
    assert sandbox.get_status(ok.payout_id, r_ok.provider_reference).status == "paid"
    assert sandbox.submit(ok).status == "paid"
    sandbox.settle(bad.payout_id)
    assert sandbox.get_status(bad.payout_id, None).status == "failed"
    assert sandbox.payment_count == 1


def test_get_provider_is_process_wide_and_refuses_sandbox_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    set_provider(None)
    try:
        monkeypatch.setenv("SANDBOX_PAYOUT_FAIL_SUFFIXES", "77")
        first = get_provider("sandbox")
        assert get_provider("sandbox") is first
        assert isinstance(first, PayoutProvider)
        assert first.submit(paypal_payout(amount=177)).status == "failed"
        with pytest.raises(ProviderConfigError):
            build_provider("stripe")
        monkeypatch.delenv("PAYPAL_CLIENT_ID", raising=False)
        monkeypatch.delenv("PAYOUT_PROVIDER_API_KEY", raising=False)
        get_settings.cache_clear()
        with pytest.raises(ProviderConfigError):
            build_provider("paypal")
        monkeypatch.setenv("PAYOUT_PROVIDER_API_KEY", "id-from-secret:secret-from-secret")
        get_settings.cache_clear()
        assert isinstance(build_provider("paypal"), PayPalProvider)
        assert "secret-from-secret" not in repr(get_settings())  # SecretStr: never printed with the settings
        monkeypatch.setenv("PAYPAL_CLIENT_ID", "id")
        monkeypatch.setenv("PAYPAL_CLIENT_SECRET", "very-secret")
        monkeypatch.setenv("PAYPAL_TIMEOUT_S", "7.5")
        get_settings.cache_clear()
        provider = build_provider("paypal")
        assert isinstance(provider, PayPalProvider)
        assert "very-secret" not in repr(provider)
        assert provider.timeout_s == 7.5
        assert provider.base_url == "https://api-m.sandbox.paypal.com"
        with monkeypatch.context() as mp:
            mp.setenv("EARNPAY_ENV", "production")
            get_settings.cache_clear()
            with pytest.raises(ProviderConfigError, match="production"):
                build_provider("sandbox")
            assert build_provider().base_url == "https://api-m.paypal.com"  # type: ignore[attr-defined]
    finally:
        get_settings.cache_clear()
        set_provider(None)


# --- PayPal against the stand-in ----------------------------------------------------------------------
@pytest.fixture
def paypal(paypal_standin: PayPalStandIn) -> Iterator[PayPalProvider]:
    yield PayPalProvider(CLIENT_ID, CLIENT_SECRET, base_url=paypal_standin.url, timeout_s=5)


def test_paypal_success(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    payout = paypal_payout("alice@example.com", 1234)
    result = paypal.submit(payout)
    assert result.status == "paid" and result.provider_reference
    assert paypal_standin.payments_for(payout.payout_id) == [
        {
            "sender_batch_id": payout.payout_id,
            "payout_batch_id": result.provider_reference,
            "receiver": "alice@example.com",
            "value": "12.34",
            "currency": "USD",
            "status": "SUCCESS",
        }
    ]
    sent = paypal_standin.create_requests[-1]
    assert sent["headers"]["paypal-request-id"] == payout.payout_id
    assert sent["json"]["sender_batch_header"]["sender_batch_id"] == payout.payout_id
    assert sent["json"]["items"][0]["sender_item_id"] == payout.payout_id
    assert "alice@example.com" not in json.dumps(result.raw)  # stored answers carry no raw email
    assert paypal.get_status(payout.payout_id, result.provider_reference).status == "paid"


@pytest.mark.parametrize("cents", [1, 10, 100, 123456789])
def test_paypal_amount_sent_as_exact_string(paypal_standin: PayPalStandIn, paypal: PayPalProvider, cents: int) -> None:
    assert paypal.submit(paypal_payout(amount=cents)).status == "paid"
    sent = paypal_standin.create_requests[-1]
    value = sent["json"]["items"][0]["amount"]["value"]
    expected = f"{cents // 100}.{cents % 100:02d}"
    assert isinstance(value, str) and value == expected
    # The bytes on the wire hold a JSON string, never a JSON number.
    assert re.search(rb'"value":"' + expected.encode() + rb'"', sent["raw"])
    assert not re.search(rb'"value":\s*[0-9]', sent["raw"])


@pytest.mark.parametrize(
    ("email", "code"),
    [
        ("fail.user@example.com", "receiver_unregistered"),
        ("denied@example.com", "receiver_account_locked"),
        ("blocked@example.com", "risk_decline"),
    ],
)
def test_paypal_definitive_failures(paypal_standin: PayPalStandIn, paypal: PayPalProvider, email: str, code: str) -> None:
    result = paypal.submit(paypal_payout(email))
    assert result.status == "failed" and result.failure_code == code and result.provider_reference
    assert paypal_standin.payments == []


def test_paypal_validation_error_is_definitive(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    result = paypal.submit(paypal_payout("invalid@example.com"))
    assert result.status == "failed" and result.failure_code == "validation_error"
    assert result.failure_message == "Receiver is invalid or does not match with type"
    assert paypal_standin.payments == []


def test_paypal_unclaimed_and_pending_are_pending(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    unclaimed = paypal_payout("unclaimed@example.com")
    assert paypal.submit(unclaimed).status == "pending"
    waiting = paypal_payout("pending@example.com")
    first = paypal.submit(waiting)
    assert first.status == "pending" and first.provider_reference
    paypal_standin.settle(waiting.payout_id, "SUCCESS")
    assert paypal.get_status(waiting.payout_id, first.provider_reference).status == "paid"
    paypal_standin.settle(unclaimed.payout_id, "RETURNED")  # 30 days later the money came back
    returned = paypal.get_status(unclaimed.payout_id, paypal.submit(unclaimed).provider_reference)
    assert returned.status == "failed" and returned.failure_code == "paypal_returned"
    with pytest.raises(PayoutNotFound):
        paypal.get_status(waiting.payout_id, "NOSUCHBATCH42")
    with pytest.raises(PayoutNotFound):
        paypal.get_status(waiting.payout_id, None)


def test_paypal_bank_account_is_refused_without_a_call(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    result = paypal.submit(bank_payout())
    assert result.status == "failed" and result.failure_code == "unsupported_method"
    assert paypal_standin.token_calls == 0 and paypal_standin.create_requests == []


def test_paypal_503_then_retry_with_same_id_pays_once(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    payout = paypal_payout("flaky@example.com", 2500)
    with pytest.raises(ProviderTransientError) as info:
        paypal.submit(payout)
    assert info.value.status_code == 503
    assert paypal_standin.payments == []
    assert paypal.submit(payout).status == "paid"
    assert paypal.submit(payout).status == "paid"  # and again: the duplicate is recognised, not paid
    assert len(paypal_standin.payments_for(payout.payout_id)) == 1 and len(paypal_standin.payments) == 1


def test_paypal_lost_reply_then_retry_finds_the_original(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    payout = paypal_payout("lostreply@example.com", 700)
    with pytest.raises(ProviderTransientError):
        paypal.submit(payout)  # PayPal paid, but we never heard
    assert len(paypal_standin.payments) == 1
    result = paypal.submit(payout)
    assert result.status == "paid"
    assert result.provider_reference == paypal_standin.payments[0]["payout_batch_id"]
    assert len(paypal_standin.payments) == 1


def test_paypal_duplicate_sender_batch_id_is_already_submitted(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    payout = paypal_payout()
    first = paypal.submit(payout)
    other_process = PayPalProvider(CLIENT_ID, CLIENT_SECRET, base_url=paypal_standin.url)  # e.g. a worker after a crash
    again = other_process.submit(payout)
    assert again.status == "paid" and again.provider_reference == first.provider_reference
    assert len(paypal_standin.payments) == 1
    # The stand-in really answered PayPal's duplicate error (and the adapter followed its link).
    assert len(paypal_standin.create_requests) == 2


def test_paypal_concurrent_submits_of_one_id_pay_once(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    payout = paypal_payout()
    results = run_threads(20, lambda: paypal.submit(payout))
    assert all(isinstance(r, ProviderResult) and r.status == "paid" for r in results), results
    assert len({r.provider_reference for r in results}) == 1
    assert len(paypal_standin.payments) == 1


def test_paypal_token_is_cached_and_renewed(paypal_standin: PayPalStandIn, paypal: PayPalProvider) -> None:
    for _ in range(5):
        assert paypal.submit(paypal_payout()).status == "paid"
    assert paypal_standin.token_calls == 1
    paypal_standin.expire_tokens()  # revoked early: one 401, one new token, and the call goes through
    assert paypal.submit(paypal_payout()).status == "paid"
    assert paypal_standin.token_calls == 2 and len(paypal_standin.payments) == 6


def test_paypal_bad_credentials_are_a_config_error(paypal_standin: PayPalStandIn) -> None:
    wrong = PayPalProvider(CLIENT_ID, "wrong-secret", base_url=paypal_standin.url)
    with pytest.raises(ProviderConfigError) as info:
        wrong.submit(paypal_payout())
    assert isinstance(info.value, ProviderTransientError)  # keep the hold, alert, retry later
    assert "wrong-secret" not in str(info.value)
    assert paypal_standin.payments == []


def test_paypal_timeout_is_transient_and_retry_pays_once(paypal_standin: PayPalStandIn) -> None:
    paypal_standin.slow_s = 1.0
    impatient = PayPalProvider(CLIENT_ID, CLIENT_SECRET, base_url=paypal_standin.url, timeout_s=0.3)
    payout = paypal_payout("slow@example.com")
    with pytest.raises(ProviderTransientError):
        impatient.submit(payout)
    paypal_standin.slow_s = 0.0
    deadline = time.monotonic() + 5
    while not paypal_standin.payments and time.monotonic() < deadline:  # PayPal finishes the request we gave up on
        time.sleep(0.02)
    assert len(paypal_standin.payments) == 1
    result = impatient.submit(payout)  # answered by the duplicate error, then the lookup
    assert result.status == "paid" and result.provider_reference == paypal_standin.payments[0]["payout_batch_id"]
    assert len(paypal_standin.payments) == 1 and len(paypal_standin.create_requests) == 2


def test_paypal_unreachable_is_transient() -> None:
    down = PayPalProvider(CLIENT_ID, CLIENT_SECRET, base_url="http://127.0.0.1:9", timeout_s=2)
    with pytest.raises(ProviderTransientError):
        down.submit(paypal_payout())
