"""Checking partner signatures: AdMob-style ECDSA over the query string, offerwall HMAC-SHA256.

Pure functions (no database, no network): ``keys`` fetches the verifying keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

# AdMob appends the signature and then the key id, always last: "...&signature=<base64url>&key_id=<digits>".
_TAIL = re.compile(r"^signature=([A-Za-z0-9_\-]{16,200}={0,2})&key_id=([0-9]{1,20})$")


class BadSignature(Exception):
    """The callback's signature is missing, malformed or does not verify (the reason says which)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def split_signed_query(query: str) -> tuple[str, bytes, str]:
    """(signed content, DER signature, key id) of an AdMob-style query string.

    The signed content is the query string exactly as received, up to (not including) ``&signature=``.
    """
    at = query.rfind("&signature=")
    if at <= 0:
        raise BadSignature("missing_signature")
    m = _TAIL.match(query[at + 1 :])
    if m is None:
        raise BadSignature("malformed_signature")
    sig_text, key_id = m.group(1), m.group(2)
    try:
        signature = base64.urlsafe_b64decode(sig_text.rstrip("=") + "=" * (-len(sig_text.rstrip("=")) % 4))
    except (binascii.Error, ValueError) as exc:
        raise BadSignature("malformed_signature") from exc
    return query[:at], signature, key_id


def verify_ecdsa(public_key: ec.EllipticCurvePublicKey, content: str, signature: bytes) -> None:
    """ECDSA P-256 / SHA-256 over the content's bytes; raises BadSignature."""
    try:
        public_key.verify(signature, content.encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise BadSignature("bad_signature") from exc


def query_params(content: str) -> dict[str, str]:
    """The parameters of a query string; a parameter given twice is refused (which one was signed?)."""
    out: dict[str, str] = {}
    for key, value in parse_qsl(content, keep_blank_values=True, strict_parsing=False, max_num_fields=50):
        if key in out:
            raise BadSignature("repeated_parameter")
        out[key] = value
    return out


def canonical(params: dict[str, str]) -> bytes:
    """The offerwall's signed text: every parameter but ``signature``, sorted by name, ``name=value`` joined by ``&``
    (values URL-decoded, as sent)."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "signature").encode()


def hmac_sha256(secret: bytes, params: dict[str, str]) -> str:
    """The lowercase hex HMAC-SHA256 a partner sends as ``signature``."""
    return hmac.new(secret, canonical(params), hashlib.sha256).hexdigest()


def verify_hmac(secrets: list[bytes], params: dict[str, str]) -> int:
    """Index of the secret that signed ``params`` (any live one: rotation overlap); raises BadSignature."""
    given = params.get("signature", "")
    if not re.fullmatch(r"[0-9a-fA-F]{64}", given):
        raise BadSignature("missing_signature" if not given else "malformed_signature")
    for i, secret in enumerate(secrets):
        if hmac.compare_digest(hmac_sha256(secret, params), given.lower()):
            return i
    raise BadSignature("bad_signature")
