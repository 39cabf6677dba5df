"""Payout providers: the interface, a deterministic sandbox and the PayPal Payouts adapter.

``get_provider()`` returns the process-wide provider named by ``PAYOUT_PROVIDER`` (``sandbox`` by default
outside production). Settings used here (``shared.config.Settings``, read when a provider is built):

* ``PAYOUT_PROVIDER``: ``sandbox`` | ``paypal``; production must name ``paypal`` (the sandbox pays nobody).
* ``PAYPAL_CLIENT_ID``, ``PAYPAL_CLIENT_SECRET`` (from Secret Manager in production; never logged), or
  ``PAYOUT_PROVIDER_API_KEY`` = ``client_id:client_secret`` (the one secret infra/secrets.tf defines),
  ``PAYPAL_BASE_URL`` (default: live in production, PayPal's sandbox elsewhere), ``PAYPAL_TIMEOUT_S``.
* ``SANDBOX_PAYOUT_*``: failure rules of the sandbox provider, read from the environment by
  ``sandbox.config_from_env`` (local/test-only tuning of a fake; not part of Settings, see there).
"""

from __future__ import annotations

import os
import threading

from functions.payouts.providers.base import (
    METHOD_TYPES,
    MethodType,
    PayoutInstruction,
    PayoutNotFound,
    PayoutProvider,
    PayoutStatus,
    ProviderConfigError,
    ProviderError,
    ProviderResult,
    ProviderTransientError,
    format_amount,
)
from functions.payouts.providers.paypal import LIVE_URL, SANDBOX_URL, PayPalProvider
from functions.payouts.providers.sandbox import SandboxConfig, SandboxProvider, config_from_env
from shared.config import Settings, get_settings

__all__ = [
    "METHOD_TYPES",
    "MethodType",
    "PayPalProvider",
    "PayoutInstruction",
    "PayoutNotFound",
    "PayoutProvider",
    "PayoutStatus",
    "ProviderConfigError",
    "ProviderError",
    "ProviderResult",
    "ProviderTransientError",
    "SandboxConfig",
    "SandboxProvider",
    "build_provider",
    "format_amount",
    "get_provider",
    "set_provider",
]

_lock = threading.Lock()
_providers: dict[str, PayoutProvider] = {}


def _provider_name(name: str | None, settings: Settings) -> str:
    return (name or settings.payout_provider or ("paypal" if settings.is_production else "sandbox")).strip().lower()


def build_provider(name: str | None = None, settings: Settings | None = None) -> PayoutProvider:
    """A new provider instance from the settings (``get_provider`` caches one per name)."""
    settings = settings or get_settings()
    name = _provider_name(name, settings)
    if name == "sandbox":
        if settings.is_production:
            raise ProviderConfigError("the sandbox payout provider pays nobody and is refused in production; set PAYOUT_PROVIDER=paypal")
        return SandboxProvider(config_from_env(os.environ.items()))
    if name == "paypal":
        client_id = settings.paypal_client_id or ""
        client_secret = settings.paypal_client_secret.get_secret_value() if settings.paypal_client_secret else ""
        if not (client_id and client_secret):
            # infra/secrets.tf provides one secret, PAYOUT_PROVIDER_API_KEY, holding "client_id:client_secret".
            combined = settings.payout_provider_api_key.get_secret_value() if settings.payout_provider_api_key else ""
            client_id, _, client_secret = combined.partition(":")
        if not client_id or not client_secret:
            raise ProviderConfigError(
                "PAYPAL_CLIENT_ID and PAYPAL_CLIENT_SECRET (or PAYOUT_PROVIDER_API_KEY='id:secret') must be set for the paypal provider"
            )
        default_url = LIVE_URL if settings.env == "production" else SANDBOX_URL
        return PayPalProvider(
            client_id,
            client_secret,
            base_url=settings.paypal_base_url or default_url,
            timeout_s=settings.paypal_timeout_s,
        )
    raise ProviderConfigError(f"unknown payout provider {name!r}; expected 'sandbox' or 'paypal'")


def get_provider(name: str | None = None, settings: Settings | None = None) -> PayoutProvider:
    """The process-wide provider: one instance per name, so the sandbox's exactly-once record and PayPal's
    token cache are shared by every worker thread of the process."""
    settings = settings or get_settings()
    key = _provider_name(name, settings)
    with _lock:
        provider = _providers.get(key)
        if provider is None:
            provider = _providers[key] = build_provider(key, settings)
        return provider


def set_provider(provider: PayoutProvider | None, name: str | None = None) -> None:
    """Installs ``provider`` as the process-wide one for ``name`` (default: its own name); with None, forgets all."""
    with _lock:
        if provider is None:
            _providers.clear()
        else:
            _providers[(name or provider.name).lower()] = provider
