"""The signals recorded with each signup, login, referral, completion and payout request.

Nothing here stores more than the rules need: the address and its network prefix (/24 for IPv4,
/64 for IPv6), a keyed hash of the client's install id (the ``X-Install-Id`` header; never the id
itself) and a keyed fingerprint of each payout destination (never the destination). The key is
``RISK_HASH_KEY`` (Secret Manager when deployed): without it a hash cannot be linked back to an id
by guessing, and rotating it unlinks every old hash at once.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from typing import Any

from shared.config import ConfigError, Settings, get_settings
from shared.db import Conn, Query

INSTALL_ID_HEADER = "X-Install-Id"
_INSTALL_ID = re.compile(r"^[A-Za-z0-9._:-]{8,128}$")
# Locally and in tests only: deployed functions refuse to hash without RISK_HASH_KEY.
_DEVELOPMENT_KEY = b"earnpay-development-risk-hash-key"
KINDS = ("signup", "login", "completion", "referral", "payout_request")

INSERT_OBSERVATION = Query(
    "risk_insert_observation",
    """INSERT INTO risk_observations (user_id, kind, ip, prefix, device_hash)
       VALUES (CAST(:user_id AS uuid), :kind, CAST(:ip AS inet), CAST(:prefix AS cidr), :device_hash)""",
)


def _key(settings: Settings) -> bytes:
    if settings.risk_hash_key is not None:
        return settings.risk_hash_key.get_secret_value().encode()
    if settings.is_production:
        raise ConfigError("RISK_HASH_KEY is required when deployed (Secret Manager secret risk-hash-key)")
    return _DEVELOPMENT_KEY


def keyed_hash(purpose: str, value: str, settings: Settings | None = None) -> bytes:
    """HMAC-SHA256 of ``value`` for one purpose (``device``, ``payout``): 32 bytes."""
    return hmac.new(_key(settings or get_settings()), f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()


def device_hash(install_id: str | None, settings: Settings | None = None) -> bytes | None:
    """The keyed hash of a well-formed install id; None when the client sent none (or garbage)."""
    if not install_id or not _INSTALL_ID.match(install_id):
        return None
    return keyed_hash("device", install_id, settings)


def network_prefix(ip: str | None) -> str | None:
    """The /24 (IPv4) or /64 (IPv6) network an address belongs to; None for no or a bad address."""
    if not ip:
        return None
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def payout_fingerprint(method_type: str, details: dict[str, Any], settings: Settings | None = None) -> bytes:
    """The keyed fingerprint of where a payout method sends money (normalised: case, spaces, dots in Gmail)."""
    if method_type == "paypal":
        from functions.risk.canonical import canonical_email

        target = canonical_email(str(details.get("email", "")))
    else:
        target = "|".join(re.sub(r"[\s-]", "", str(details.get(k, ""))).upper() for k in ("iban", "account_number", "routing_number"))
    return keyed_hash("payout", f"{method_type}:{target}", settings)


def observe(conn: Conn, user_id: str, kind: str, ip: str | None, install_id: str | None) -> None:
    """Records one observation in the caller's transaction (one INSERT)."""
    if kind not in KINDS:
        raise ValueError(kind)
    try:
        addr: str | None = str(ipaddress.ip_address(ip)) if ip else None
    except ValueError:
        addr = None
    conn.execute(INSERT_OBSERVATION, user_id=user_id, kind=kind, ip=addr, prefix=network_prefix(addr), device_hash=device_hash(install_id))
