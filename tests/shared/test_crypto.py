"""Envelope encryption of payout details: local KEK, a Cloud KMS stand-in, tampering, rotation, production rules."""

from __future__ import annotations

import base64
import json
import os
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shared import crypto
from shared.config import ConfigError, get_settings
from shared.crypto import DecryptionError, KeyServiceUnavailable, KmsKek, LocalKek, decrypt_json, encrypt_json, rewrap

DETAILS = {"type": "bank_account", "iban": "DE89370400440532013000", "holder_name": "Zoë Ünicode", "bic": "COBADEFFXXX"}
KEY_NAME = "projects/earnpay-test/locations/europe-west1/keyRings/earnpay/cryptoKeys/payout-details-kek"


def _key() -> bytes:
    return secrets.token_bytes(32)


@pytest.fixture
def local_kek(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalKek]:
    """A fresh local KEK for this test only, installed as the process-wide KEK."""
    key = _key()
    monkeypatch.setenv("LOCAL_KEK_BASE64", base64.b64encode(key).decode())
    monkeypatch.delenv("KMS_PAYOUT_KEY_NAME", raising=False)
    monkeypatch.delenv("PAYOUT_DETAILS_KEK", raising=False)
    monkeypatch.delenv("LOCAL_KEK_PREVIOUS_BASE64", raising=False)
    get_settings.cache_clear()
    crypto.set_kek(None)
    kek = crypto.get_kek()
    assert isinstance(kek, LocalKek)
    yield kek
    crypto.set_kek(None)
    get_settings.cache_clear()


def _flip(b64: str, index: int = -1) -> str:
    raw = bytearray(base64.b64decode(b64))
    raw[index] ^= 0x01
    return base64.b64encode(bytes(raw)).decode()


# --- round trips and tampering ---------------------------------------------------------------------
def test_round_trip_and_envelope_shape(local_kek: LocalKek) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1")
    assert set(env) == {"v", "kek_type", "kek_id", "kek_version", "wrapped_key", "nonce", "ciphertext"}
    assert env["v"] == 1 and env["kek_type"] == "local" and env["kek_id"] == local_kek.kek_id
    assert len(base64.b64decode(env["nonce"])) == 12
    text = json.dumps(env)  # storable as JSONB as is
    # Whole values: a 2-4 character fragment turns up in random base64 now and then (this test used to flake).
    assert DETAILS["iban"] not in text and json.dumps(DETAILS["holder_name"])[1:-1] not in text and "Zoë" not in text
    assert decrypt_json(json.loads(text), "payout_method:u1") == DETAILS


def test_same_plaintext_encrypts_differently(local_kek: LocalKek) -> None:
    a, b = encrypt_json(DETAILS, "payout_method:u1"), encrypt_json(DETAILS, "payout_method:u1")
    assert a["ciphertext"] != b["ciphertext"] and a["nonce"] != b["nonce"] and a["wrapped_key"] != b["wrapped_key"]


@pytest.mark.parametrize("field", ["ciphertext", "nonce", "wrapped_key"])
def test_tampered_field_is_refused(local_kek: LocalKek, field: str) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1")
    bad = {**env, field: _flip(env[field], 0 if field == "nonce" else -1)}
    with pytest.raises(DecryptionError):
        decrypt_json(bad, "payout_method:u1")


def test_ciphertext_moved_to_another_owner_is_refused(local_kek: LocalKek) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1")
    with pytest.raises(DecryptionError, match="authentication"):
        decrypt_json(env, "payout_method:u2")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: {**e, "v": 2},
        lambda e: {**e, "nonce": "!!not base64!!"},
        lambda e: {**e, "kek_id": "local:0000000000000000"},
        lambda e: {**e, "kek_type": "kms"},
        lambda e: {k: v for k, v in e.items() if k != "ciphertext"},
        lambda e: {**e, "nonce": base64.b64encode(b"short").decode()},
    ],
)
def test_malformed_envelopes_raise_decryption_error(local_kek: LocalKek, mutate: Any) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1")
    with pytest.raises(DecryptionError):
        decrypt_json(mutate(env), "payout_method:u1")


def test_another_local_kek_cannot_open(local_kek: LocalKek) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1")
    with pytest.raises(DecryptionError, match="does not hold"):
        decrypt_json(env, "payout_method:u1", kek=LocalKek(_key()))


# --- rotation ----------------------------------------------------------------------------------------
def test_rewrap_to_new_local_kek_keeps_ciphertext(monkeypatch: pytest.MonkeyPatch, local_kek: LocalKek) -> None:
    old_env = encrypt_json(DETAILS, "payout_method:u1")
    new_key = _key()
    rotated = LocalKek(new_key, previous=[base64.b64decode(os.environ["LOCAL_KEK_BASE64"])])
    assert crypto.needs_rewrap(old_env, kek=rotated)
    # The rotated keyring still opens old envelopes...
    assert decrypt_json(old_env, "payout_method:u1", kek=rotated) == DETAILS
    new_env = rewrap(old_env, "payout_method:u1", kek=rotated)
    assert new_env["ciphertext"] == old_env["ciphertext"] and new_env["nonce"] == old_env["nonce"]
    assert new_env["kek_id"] == rotated.kek_id != old_env["kek_id"]
    assert not crypto.needs_rewrap(new_env, kek=rotated)
    # ...and the re-wrapped one opens with the new key alone, once the old key is retired.
    assert decrypt_json(new_env, "payout_method:u1", kek=LocalKek(new_key)) == DETAILS
    with pytest.raises(DecryptionError):
        rewrap(old_env, "payout_method:u2", kek=rotated)


def test_previous_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, local_kek: LocalKek) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1")
    old = os.environ["LOCAL_KEK_BASE64"]
    monkeypatch.setenv("LOCAL_KEK_BASE64", base64.b64encode(_key()).decode())
    monkeypatch.setenv("LOCAL_KEK_PREVIOUS_BASE64", f"{base64.b64encode(_key()).decode()},{old}")
    get_settings.cache_clear()
    crypto.set_kek(None)
    assert decrypt_json(env, "payout_method:u1") == DETAILS
    assert rewrap(env, "payout_method:u1")["kek_id"] == crypto.get_kek().kek_id


def test_local_kek_file_is_created_once(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    path = tmp_path / "kek" / "local-kek"
    monkeypatch.delenv("LOCAL_KEK_BASE64", raising=False)
    monkeypatch.delenv("KMS_PAYOUT_KEY_NAME", raising=False)
    monkeypatch.delenv("PAYOUT_DETAILS_KEK", raising=False)
    monkeypatch.setenv("LOCAL_KEK_FILE", str(path))
    get_settings.cache_clear()
    try:
        first = crypto.build_kek()
        assert path.exists() and (path.stat().st_mode & 0o777) == 0o600
        assert crypto.build_kek().kek_id == first.kek_id  # same key read back, not a new one
        env = encrypt_json(DETAILS, "a", kek=first)
        assert decrypt_json(env, "a", kek=crypto.build_kek()) == DETAILS
    finally:
        get_settings.cache_clear()


# --- production rules --------------------------------------------------------------------------------
def test_production_refuses_the_local_kek(tmp_path: Any) -> None:
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("EARNPAY_ENV", "production")
            mp.setenv("DATABASE_URL", "postgresql://earnpay_app@127.0.0.1:1/earnpay")
            mp.setenv("LOCAL_KEK_BASE64", base64.b64encode(_key()).decode())
            mp.setenv("LOCAL_KEK_FILE", str(tmp_path / "must-not-exist"))
            mp.delenv("KMS_PAYOUT_KEY_NAME", raising=False)
            mp.delenv("PAYOUT_DETAILS_KEK", raising=False)
            get_settings.cache_clear()
            assert get_settings().is_production
            with pytest.raises(ConfigError, match="KMS_PAYOUT_KEY_NAME"):
                crypto.build_kek()
            assert not (tmp_path / "must-not-exist").exists()
            # With a KMS key named, production gets KMS (no credentials are touched until first use).
            mp.setenv("PAYOUT_DETAILS_KEK", KEY_NAME)  # the name Terraform uses
            get_settings.cache_clear()
            assert isinstance(crypto.build_kek(), KmsKek)
            mp.delenv("PAYOUT_DETAILS_KEK")
            mp.setenv("KMS_PAYOUT_KEY_NAME", KEY_NAME)
            get_settings.cache_clear()
            assert isinstance(crypto.build_kek(), KmsKek)
    finally:
        get_settings.cache_clear()
        crypto.set_kek(None)
    assert not get_settings().is_production


def test_bad_kms_key_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        KmsKek(KEY_NAME + "/cryptoKeyVersions/3")


# --- Cloud KMS through a local stand-in ---------------------------------------------------------------
class FakeKms:
    """Speaks the two KMS REST calls used here: versions, a primary, AAD checks, and KMS-shaped errors."""

    def __init__(self) -> None:
        self.versions: dict[str, list[bytes]] = {KEY_NAME: [_key()]}
        self.primary: dict[str, int] = {KEY_NAME: 1}
        self.calls: list[tuple[str, str]] = []
        self.fail_next: int | None = None
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
                status, payload = fake.handle(self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def rotate(self) -> None:
        with self.lock:
            self.versions[KEY_NAME].append(_key())
            self.primary[KEY_NAME] = len(self.versions[KEY_NAME])

    @staticmethod
    def _error(code: int, status: str, message: str) -> tuple[int, dict[str, Any]]:
        return code, {"error": {"code": code, "message": message, "status": status}}

    def handle(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        assert path.startswith("/v1/")
        name, _, verb = path[len("/v1/") :].rpartition(":")
        with self.lock:
            self.calls.append((name, verb))
            if self.fail_next:
                code, self.fail_next = self.fail_next, None
                return self._error(code, "UNAVAILABLE", "The service is currently unavailable.")
            if name not in self.versions:
                return self._error(404, "NOT_FOUND", f"CryptoKey {name} not found.")
            aad = base64.b64decode(body.get("additionalAuthenticatedData", ""))
            if verb == "encrypt":
                version = self.primary[name]
                nonce = secrets.token_bytes(12)
                ct = AESGCM(self.versions[name][version - 1]).encrypt(nonce, base64.b64decode(body["plaintext"]), aad)
                blob = version.to_bytes(4, "big") + nonce + ct
                return 200, {"name": f"{name}/cryptoKeyVersions/{version}", "ciphertext": base64.b64encode(blob).decode()}
            if verb == "decrypt":
                blob = base64.b64decode(body["ciphertext"])
                version = int.from_bytes(blob[:4], "big")
                try:
                    key = self.versions[name][version - 1]
                    plaintext = AESGCM(key).decrypt(blob[4:16], blob[16:], aad)
                except (IndexError, InvalidTag):
                    return self._error(400, "INVALID_ARGUMENT", "Decryption failed: verify that 'name' refers to the correct CryptoKey.")
                return 200, {"plaintext": base64.b64encode(plaintext).decode(), "usedPrimary": version == self.primary[name]}
            return self._error(404, "NOT_FOUND", "unknown method")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_kms(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeKms]:
    fake = FakeKms()
    monkeypatch.setenv("KMS_PAYOUT_KEY_NAME", KEY_NAME)
    monkeypatch.setenv("KMS_ENDPOINT", fake.url)
    get_settings.cache_clear()
    session = requests.Session()
    session.trust_env = False  # never route the stand-in through a proxy from the environment
    crypto.set_kek(None)
    crypto.get_kek(session=session)
    yield fake
    crypto.set_kek(None)
    get_settings.cache_clear()
    session.close()
    fake.close()


def test_kms_round_trip_and_rotation(fake_kms: FakeKms) -> None:
    kek = crypto.get_kek()
    assert isinstance(kek, KmsKek) and kek.endpoint == fake_kms.url
    env = encrypt_json(DETAILS, "payout_method:u1")
    assert env["kek_type"] == "kms" and env["kek_id"] == KEY_NAME
    assert env["kek_version"] == f"{KEY_NAME}/cryptoKeyVersions/1"
    assert decrypt_json(env, "payout_method:u1") == DETAILS
    assert fake_kms.calls == [(KEY_NAME, "encrypt"), (KEY_NAME, "decrypt")]

    fake_kms.rotate()
    # Old envelopes still open after rotation; a re-wrap moves them to the new primary version.
    assert decrypt_json(env, "payout_method:u1") == DETAILS
    new_env = rewrap(env, "payout_method:u1")
    assert new_env["kek_version"] == f"{KEY_NAME}/cryptoKeyVersions/2"
    assert new_env["ciphertext"] == env["ciphertext"] and new_env["wrapped_key"] != env["wrapped_key"]
    assert decrypt_json(new_env, "payout_method:u1") == DETAILS


def test_kms_refuses_other_owner_and_tampering(fake_kms: FakeKms) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1")
    with pytest.raises(DecryptionError, match="Cloud KMS refused"):
        decrypt_json(env, "payout_method:u2")
    with pytest.raises(DecryptionError):
        decrypt_json({**env, "wrapped_key": _flip(env["wrapped_key"])}, "payout_method:u1")
    with pytest.raises(DecryptionError):
        decrypt_json({**env, "ciphertext": _flip(env["ciphertext"])}, "payout_method:u1")


def test_kms_outage_is_retryable_not_a_decryption_error(fake_kms: FakeKms) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1")
    fake_kms.fail_next = 503
    with pytest.raises(KeyServiceUnavailable) as info:
        decrypt_json(env, "payout_method:u1")
    assert info.value.status == 503
    fake_kms.fail_next = 429
    with pytest.raises(KeyServiceUnavailable):
        encrypt_json(DETAILS, "payout_method:u1")
    assert decrypt_json(env, "payout_method:u1") == DETAILS


def test_kms_unreachable_is_retryable() -> None:
    session = requests.Session()
    session.trust_env = False
    kek = KmsKek(KEY_NAME, endpoint="http://127.0.0.1:9", session=session, timeout_s=2)
    with pytest.raises(KeyServiceUnavailable):
        encrypt_json(DETAILS, "x", kek=kek)


def test_local_envelope_under_kms_is_refused_clearly(fake_kms: FakeKms) -> None:
    env = encrypt_json(DETAILS, "payout_method:u1", kek=LocalKek(_key()))
    with pytest.raises(DecryptionError, match="local KEK"):
        decrypt_json(env, "payout_method:u1")


# --- masking -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("email", "masked"),
    [("alice@example.com", "a***e@example.com"), ("al@example.com", "a***@example.com"), ("a@x.io", "a***@x.io"), ("nope", "***")],
)
def test_mask_email(email: str, masked: str) -> None:
    assert crypto.mask_email(email) == masked


@pytest.mark.parametrize(
    ("account", "masked"),
    [("DE89370400440532013000", "•••• 3000"), ("DE89 3704 0044 0532 0130 00", "•••• 3000"), ("1234", "••••"), ("", "••••")],
)
def test_mask_account(account: str, masked: str) -> None:
    assert crypto.mask_account(account) == masked
