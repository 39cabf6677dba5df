"""Envelope encryption of sensitive records (payout method details), and masking for display.

Each record gets a fresh 256-bit data key. The record's JSON is sealed with AES-256-GCM under that
key with a random 96-bit nonce and associated data that binds it to its owner (for example
``payout_method:<user_id>``), so a ciphertext copied onto another user's row does not decrypt.
The data key is wrapped by a key-encryption key (KEK), chosen from ``shared.config.Settings`` when
first needed (the variables below are its fields' names):

* production: Cloud KMS (``KMS_PAYOUT_KEY_NAME``, or ``PAYOUT_DETAILS_KEK`` as Terraform sets it, =
  ``projects/P/locations/L/keyRings/R/cryptoKeys/K``),
  over the REST API (``{KMS_ENDPOINT}/v1/{name}:encrypt`` / ``:decrypt``) with Application Default
  Credentials. KMS keeps every key version; decrypt finds the version from the ciphertext, so rotation
  in KMS never breaks old envelopes.
* development and tests: a local AES-256-GCM KEK from ``LOCAL_KEK_BASE64`` or, failing that, one
  generated once into the git-ignored file ``.data/local-kek`` (``LOCAL_KEK_FILE`` overrides the path).
  Older local keys stay readable via ``LOCAL_KEK_PREVIOUS_BASE64`` (comma-separated). Production
  refuses the local KEK outright.

The envelope is a small JSON-able dict (store it in a JSONB column)::

    {"v": 1, "kek_type": "kms"|"local", "kek_id": "...", "kek_version": "...|null",
     "wrapped_key": b64, "nonce": b64, "ciphertext": b64}

``rewrap`` re-wraps the data key under the current KEK without touching nonce or ciphertext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import error_codes as codes
from shared.config import ConfigError, Settings, get_settings
from shared.errors import ServiceUnavailable

ENVELOPE_VERSION = 1
DEFAULT_KMS_ENDPOINT: str = Settings.model_fields["kms_endpoint"].default
KMS_SCOPE = "https://www.googleapis.com/auth/cloudkms"
KMS_TIMEOUT_S = 10.0
_NONCE_BYTES = 12
_KEY_BYTES = 32
# Domain separation: the same aad string used elsewhere can never validate one of these envelopes.
_DATA_AAD_PREFIX = b"earnpay.envelope.v1.data\x00"
_WRAP_AAD_PREFIX = b"earnpay.envelope.v1.wrap\x00"


class CryptoError(Exception):
    """Base class of this module's errors."""


class DecryptionError(CryptoError):
    """The envelope cannot be opened: tampered, moved to another owner, malformed, or its KEK is unknown."""


class KeyServiceUnavailable(ServiceUnavailable):
    """Cloud KMS could not be reached or answered 429/5xx: safe to retry later (HTTP 503, CloudEvent retry)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=codes.KEY_SERVICE_UNAVAILABLE)


# --- key-encryption keys ---------------------------------------------------------------------------
class Kek(Protocol):
    """A key-encryption key: wraps and unwraps data keys; ``aad`` binds a wrapped key to its record."""

    kek_type: str
    kek_id: str

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[bytes, str | None]:
        """Returns (wrapped key, key version used or None)."""
        ...

    def unwrap(self, wrapped: bytes, aad: bytes, kek_id: str) -> bytes:
        """Returns the data key; raises DecryptionError when it cannot."""
        ...


def _fingerprint(key: bytes) -> str:
    """A short public name for a local key (never the key itself): lets an envelope say which key wrapped it."""
    return "local:" + hashlib.sha256(b"earnpay-local-kek-id\x00" + key).hexdigest()[:16]


class LocalKek:
    """AES-256-GCM KEK held in process memory (development and tests only). Keeps older keys for decrypt."""

    kek_type = "local"

    def __init__(self, key: bytes, previous: Iterable[bytes] = ()) -> None:
        if len(key) != _KEY_BYTES:
            raise ConfigError("the local KEK must be 32 bytes (base64 of 32 random bytes)")
        self.kek_id = _fingerprint(key)
        self._keys: dict[str, AESGCM] = {self.kek_id: AESGCM(key)}
        for old in previous:
            if len(old) != _KEY_BYTES:
                raise ConfigError("every previous local KEK must be 32 bytes")
            self._keys.setdefault(_fingerprint(old), AESGCM(old))

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[bytes, str | None]:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return nonce + self._keys[self.kek_id].encrypt(nonce, data_key, aad), None

    def unwrap(self, wrapped: bytes, aad: bytes, kek_id: str) -> bytes:
        aes = self._keys.get(kek_id)
        if aes is None:
            raise DecryptionError(f"envelope was wrapped by local KEK {kek_id}, which this process does not hold")
        if len(wrapped) <= _NONCE_BYTES:
            raise DecryptionError("wrapped key is truncated")
        try:
            return aes.decrypt(wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:], aad)
        except InvalidTag as exc:
            raise DecryptionError("wrapped data key failed authentication (tampered or bound to another record)") from exc


class KmsSession(Protocol):
    """The part of ``requests.Session`` / ``AuthorizedSession`` used here (tests inject a plain session)."""

    def post(self, url: str, *, json: Any = ..., timeout: Any = ...) -> Any: ...


class KmsKek:
    """Cloud KMS symmetric key over its REST API; decrypt works for every enabled version of the key."""

    kek_type = "kms"

    def __init__(
        self, key_name: str, *, endpoint: str | None = None, session: KmsSession | None = None, timeout_s: float = KMS_TIMEOUT_S
    ) -> None:
        parts = key_name.strip("/").split("/")
        if len(parts) != 8 or parts[0::2] != ["projects", "locations", "keyRings", "cryptoKeys"]:
            raise ConfigError("KMS_PAYOUT_KEY_NAME must look like projects/P/locations/L/keyRings/R/cryptoKeys/K (no version)")
        self.kek_id = "/".join(parts)
        self.endpoint = (endpoint or DEFAULT_KMS_ENDPOINT).rstrip("/")
        self.timeout_s = timeout_s
        self._session = session
        self._lock = threading.Lock()

    def _get_session(self) -> KmsSession:
        with self._lock:
            if self._session is None:
                # Imported lazily: only production code paths look up Google credentials.
                import google.auth
                from google.auth.transport.requests import AuthorizedSession

                credentials, _ = google.auth.default(scopes=[KMS_SCOPE])
                self._session = AuthorizedSession(credentials)
            return self._session

    def _call(self, name: str, verb: str, body: dict[str, str]) -> dict[str, Any]:
        url = f"{self.endpoint}/v1/{name}:{verb}"
        try:
            response = self._get_session().post(url, json=body, timeout=self.timeout_s)
        except Exception as exc:  # connection errors, timeouts, credential refresh failures
            raise KeyServiceUnavailable(f"Cloud KMS {verb} failed: {type(exc).__name__}") from exc
        status = int(response.status_code)
        if status == 429 or status >= 500:
            raise KeyServiceUnavailable(f"Cloud KMS {verb} answered HTTP {status}")
        if status != 200:
            message = _kms_error_message(response)
            if verb == "decrypt" and status == 400:
                # KMS answers 400 INVALID_ARGUMENT "Decryption failed" for a tampered ciphertext or wrong AAD.
                raise DecryptionError(f"Cloud KMS refused to unwrap the data key: {message}")
            raise CryptoError(f"Cloud KMS {verb} answered HTTP {status}: {message}")
        try:
            data = response.json()
        except ValueError as exc:
            raise KeyServiceUnavailable(f"Cloud KMS {verb} returned a body that is not JSON") from exc
        if not isinstance(data, dict):
            raise KeyServiceUnavailable(f"Cloud KMS {verb} returned an unexpected body")
        return data

    def wrap(self, data_key: bytes, aad: bytes) -> tuple[bytes, str | None]:
        data = self._call(self.kek_id, "encrypt", {"plaintext": _b64e(data_key), "additionalAuthenticatedData": _b64e(aad)})
        try:
            wrapped = _b64d(data["ciphertext"])
        except (KeyError, DecryptionError) as exc:
            raise KeyServiceUnavailable("Cloud KMS encrypt returned no usable ciphertext") from exc
        version = data.get("name")
        return wrapped, version if isinstance(version, str) else None

    def unwrap(self, wrapped: bytes, aad: bytes, kek_id: str) -> bytes:
        # KMS picks the key version from the ciphertext itself: always call decrypt on the key, not a version.
        data = self._call(kek_id, "decrypt", {"ciphertext": _b64e(wrapped), "additionalAuthenticatedData": _b64e(aad)})
        try:
            key = _b64d(data["plaintext"])
        except KeyError as exc:
            raise DecryptionError("Cloud KMS decrypt returned no plaintext") from exc
        if len(key) != _KEY_BYTES:
            raise DecryptionError("Cloud KMS returned a data key of the wrong length")
        return key


def _kms_error_message(response: Any) -> str:
    try:
        body = response.json()
        return str(body.get("error", {}).get("message", ""))[:200]
    except Exception:
        return ""


# --- choosing the KEK --------------------------------------------------------------------------------
_kek: Kek | None = None
_kek_lock = threading.Lock()


def _local_kek_file() -> Path:
    return get_settings().local_kek_file


def _decode_key(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{what} is not valid base64") from exc


def _load_or_create_local_key() -> bytes:
    """Reads the development KEK file, creating it once (exclusively, mode 0600) when missing."""
    path = _local_kek_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as handle:
            handle.write(base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode() + "\n")
    text = ""
    for _ in range(50):  # another process may have created it a moment ago and be writing it
        text = path.read_text().strip()
        if text:
            break
        time.sleep(0.01)
    return _decode_key(text, str(path))


def build_kek(*, session: KmsSession | None = None) -> Kek:
    """The KEK the settings ask for (a new object each call; ``get_kek`` caches one)."""
    settings = get_settings()
    # kms_payout_key_name is KMS_PAYOUT_KEY_NAME, or PAYOUT_DETAILS_KEK as infra/functions.tf names it.
    if settings.kms_payout_key_name:
        return KmsKek(settings.kms_payout_key_name, endpoint=settings.kms_endpoint, session=session)
    if settings.is_production:
        raise ConfigError("production needs KMS_PAYOUT_KEY_NAME for payout details: the local key-encryption key is for development only")
    given = settings.local_kek_base64.get_secret_value().strip() if settings.local_kek_base64 else ""
    key = _decode_key(given, "LOCAL_KEK_BASE64") if given else _load_or_create_local_key()
    older = settings.local_kek_previous_base64.get_secret_value() if settings.local_kek_previous_base64 else ""
    previous = [_decode_key(p, "LOCAL_KEK_PREVIOUS_BASE64") for p in older.split(",") if p.strip()]
    return LocalKek(key, previous)


def get_kek(*, session: KmsSession | None = None) -> Kek:
    """The process-wide KEK: Cloud KMS when ``KMS_PAYOUT_KEY_NAME`` (or ``PAYOUT_DETAILS_KEK``) is set, else the local
    key (never in production). ``session`` (tests) replaces the Google-authorised HTTP session of a KMS KEK."""
    global _kek
    with _kek_lock:
        if _kek is None or session is not None:
            _kek = build_kek(session=session)
        return _kek


def set_kek(kek: Kek | None) -> None:
    """Replaces (or with None, forgets) the process-wide KEK; for tests and key rotation tools."""
    global _kek
    with _kek_lock:
        _kek = kek


# --- envelopes ---------------------------------------------------------------------------------------
def _b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _b64d(text: Any) -> bytes:
    if not isinstance(text, str):
        raise DecryptionError("envelope field is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptionError("envelope field is not valid base64") from exc


def _aad_bytes(prefix: bytes, aad: str) -> bytes:
    if not isinstance(aad, str) or not aad:
        raise ValueError("aad must be a non-empty string naming the record's owner, e.g. 'payout_method:<user_id>'")
    return prefix + aad.encode("utf-8")


def _wrap(kek: Kek, data_key: bytes, aad: str) -> dict[str, Any]:
    wrapped, version = kek.wrap(data_key, _aad_bytes(_WRAP_AAD_PREFIX, aad))
    return {"kek_type": kek.kek_type, "kek_id": kek.kek_id, "kek_version": version, "wrapped_key": _b64e(wrapped)}


def _unwrap(envelope: dict[str, Any], aad: str, kek: Kek) -> bytes:
    if not isinstance(envelope, dict):
        raise DecryptionError("envelope is not an object")
    if envelope.get("v") != ENVELOPE_VERSION:
        raise DecryptionError(f"unsupported envelope version {envelope.get('v')!r}")
    kek_type, kek_id = envelope.get("kek_type"), envelope.get("kek_id")
    if not isinstance(kek_id, str) or kek_type not in ("local", "kms"):
        raise DecryptionError("envelope does not name its key-encryption key")
    if kek_type != kek.kek_type:
        raise DecryptionError(f"envelope was wrapped by a {kek_type} KEK but this process uses a {kek.kek_type} KEK")
    key = kek.unwrap(_b64d(envelope.get("wrapped_key")), _aad_bytes(_WRAP_AAD_PREFIX, aad), kek_id)
    if len(key) != _KEY_BYTES:
        raise DecryptionError("unwrapped data key has the wrong length")
    return key


def encrypt_json(obj: dict[str, Any], aad: str, *, kek: Kek | None = None) -> dict[str, Any]:
    """Seals ``obj`` (JSON-serialisable) under a fresh data key bound to ``aad``; returns the envelope dict."""
    if not isinstance(obj, dict):
        raise TypeError("encrypt_json takes a dict")
    kek = kek or get_kek()
    plaintext = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False).encode("utf-8")
    data_key = AESGCM.generate_key(bit_length=256)
    nonce = secrets.token_bytes(_NONCE_BYTES)
    ciphertext = AESGCM(data_key).encrypt(nonce, plaintext, _aad_bytes(_DATA_AAD_PREFIX, aad))
    return {"v": ENVELOPE_VERSION, **_wrap(kek, data_key, aad), "nonce": _b64e(nonce), "ciphertext": _b64e(ciphertext)}


def decrypt_json(envelope: dict[str, Any], aad: str, *, kek: Kek | None = None) -> dict[str, Any]:
    """Opens an envelope made by ``encrypt_json`` with the same ``aad``; raises DecryptionError otherwise."""
    kek = kek or get_kek()
    data_key = _unwrap(envelope, aad, kek)
    nonce = _b64d(envelope.get("nonce"))
    if len(nonce) != _NONCE_BYTES:
        raise DecryptionError("envelope nonce has the wrong length")
    try:
        plaintext = AESGCM(data_key).decrypt(nonce, _b64d(envelope.get("ciphertext")), _aad_bytes(_DATA_AAD_PREFIX, aad))
    except InvalidTag as exc:
        raise DecryptionError("ciphertext failed authentication (tampered, or bound to another owner)") from exc
    try:
        value = json.loads(plaintext.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DecryptionError("decrypted payload is not JSON") from exc
    if not isinstance(value, dict):
        raise DecryptionError("decrypted payload is not a JSON object")
    return value


def rewrap(envelope: dict[str, Any], aad: str, *, kek: Kek | None = None, old_kek: Kek | None = None) -> dict[str, Any]:
    """Re-wraps the envelope's data key under the current KEK; nonce and ciphertext are kept byte for byte.

    ``kek`` is the new (current) KEK. ``old_kek`` unwraps and defaults to the current one, which can open
    envelopes of any enabled version of the same KMS key, or of a local KEK listed in LOCAL_KEK_PREVIOUS_BASE64;
    pass it to migrate between KEKs (for example local to KMS).
    """
    current = kek or get_kek()
    data_key = _unwrap(envelope, aad, old_kek or current)
    return {**envelope, **_wrap(current, data_key, aad)}


def needs_rewrap(envelope: dict[str, Any], *, kek: Kek | None = None) -> bool:
    """True when a local envelope was wrapped by an older local KEK (KMS rotation is handled by KMS itself)."""
    current = kek or get_kek()
    return envelope.get("kek_type") != current.kek_type or envelope.get("kek_id") != current.kek_id


# --- masking for display -----------------------------------------------------------------------------
MASK = "•"


def mask_email(email: str) -> str:
    """``alice@example.com`` -> ``a***e@example.com``; short local parts keep only their first character."""
    local, sep, domain = (email or "").strip().rpartition("@")
    if not sep:
        return "***"
    if len(local) <= 2:
        return f"{local[:1]}***@{domain}"
    return f"{local[0]}***{local[-1]}@{domain}"


def mask_account(account: str) -> str:
    """``DE89370400440532013000`` -> ``•••• 3000``; accounts of four characters or fewer show nothing."""
    compact = "".join(ch for ch in (account or "") if ch.isalnum())
    if len(compact) <= 4:
        return MASK * 4
    return f"{MASK * 4} {compact[-4:]}"
