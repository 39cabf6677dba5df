"""A rewarded-video network's verifying public keys, fetched from its key endpoint and cached in the process.

AdMob's format: ``{"keys": [{"keyId": 1234, "pem": "-----BEGIN PUBLIC KEY-----...", "base64": "MFkw..."}]}``.
Keys are trusted for at most ``PARTNER_KEYS_MAX_AGE_SECONDS`` (24 h) after their fetch; a key id we do
not know fetches again (the network rotated), but at most once per ``PARTNER_KEYS_REFRESH_MIN_SECONDS``
per endpoint, so callbacks naming made-up key ids cannot turn us into a fetch amplifier. The cache is a
per-instance dictionary (no background threads: fetches happen on the request that needs them).
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from shared.config import get_settings

MAX_KEYS_BYTES = 64 * 1024


class KeysUnavailable(Exception):
    """The key endpoint could not be read (or sent nothing usable) and no fresh keys are cached."""


@dataclass
class _Keys:
    keys: dict[str, ec.EllipticCurvePublicKey] = field(default_factory=dict)
    fetched_at: float = float("-inf")  # when these keys were fetched (monotonic)
    attempted_at: float = float("-inf")  # the last fetch attempt, successful or not


_cache: dict[str, _Keys] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forgets every cached key (tests; a new process starts empty anyway)."""
    with _lock:
        _cache.clear()


def public_key(url: str, key_id: str) -> ec.EllipticCurvePublicKey | None:
    """The key ``key_id`` of the endpoint ``url``; None when the endpoint does not publish it.

    Raises KeysUnavailable when the keys must be fetched and cannot be.
    """
    settings = get_settings()
    now = time.monotonic()
    with _lock:
        entry = _cache.setdefault(url, _Keys())
        fresh = now - entry.fetched_at < settings.partner_keys_max_age_seconds
        if fresh and key_id in entry.keys:
            return entry.keys[key_id]
        if fresh and now - entry.attempted_at < settings.partner_keys_refresh_min_seconds:
            return None  # an unknown key id, and we fetched a moment ago: do not fetch again
        entry.attempted_at = now
        try:
            keys = _fetch(url, settings.partner_keys_timeout_seconds)
        except KeysUnavailable:
            if fresh:
                return None
            entry.keys = {}
            raise
        entry.keys, entry.fetched_at = keys, now
        return keys.get(key_id)


def _fetch(url: str, timeout: float) -> dict[str, ec.EllipticCurvePublicKey]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310  # the admin-configured http(s) key URL
            raw = resp.read(MAX_KEYS_BYTES + 1)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise KeysUnavailable(f"could not fetch {url}: {exc}") from exc
    if len(raw) > MAX_KEYS_BYTES:
        raise KeysUnavailable(f"{url} sent more than {MAX_KEYS_BYTES} bytes")
    try:
        doc: Any = json.loads(raw)
        entries = doc["keys"]
        if not isinstance(entries, list):
            raise TypeError("keys is not a list")
        return dict(_parse(e) for e in entries)
    except (ValueError, KeyError, TypeError) as exc:
        raise KeysUnavailable(f"{url} sent no usable keys: {exc}") from exc


def _parse(entry: Any) -> tuple[str, ec.EllipticCurvePublicKey]:
    key_id = str(entry["keyId"])
    if entry.get("pem"):
        key = serialization.load_pem_public_key(str(entry["pem"]).encode())
    else:
        key = serialization.load_der_public_key(base64.b64decode(str(entry["base64"])))
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"key {key_id} is not an ECDSA P-256 key")
    return key_id, key
