"""Configuration: safe local defaults, and production never falls back to the embedded database."""

from __future__ import annotations

import os
import re
from pathlib import Path

import hcl2
import pytest
from pydantic import AliasChoices, ValidationError

from shared.config import ConfigError, Settings, get_settings


def _settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for key in ("DATABASE_URL", "MIGRATE_DATABASE_URL", "DB_INSTANCE_CONNECTION_NAME", "DB_IAM_USER", "K_SERVICE", "EARNPAY_ENV"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return Settings()


def test_local_defaults_use_the_embedded_database(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(monkeypatch)
    assert s.env == "local" and not s.is_production and s.uses_embedded_database
    assert s.db_statement_timeout_ms == 30_000 and s.slow_query_ms == 500
    assert s.argon2_memory_kib >= 19_456 and s.argon2_time_cost >= 2


@pytest.mark.parametrize("env", [{"K_SERVICE": "auth"}, {"EARNPAY_ENV": "production"}, {"EARNPAY_ENV": "staging"}])
def test_production_without_a_database_refuses_to_start(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="never falls back to the embedded database"):
        _settings(monkeypatch, **env)


def test_cloud_sql_needs_an_iam_user(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="DB_IAM_USER"):
        _settings(monkeypatch, K_SERVICE="auth", DB_INSTANCE_CONNECTION_NAME="p:r:i")
    s = _settings(monkeypatch, K_SERVICE="auth", DB_INSTANCE_CONNECTION_NAME="p:r:i", DB_IAM_USER="fn-auth@p.iam")
    assert s.is_production and not s.uses_embedded_database


def test_production_never_builds_an_embedded_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.db import app_url

    s = _settings(monkeypatch, K_SERVICE="auth", DB_INSTANCE_CONNECTION_NAME="p:r:i", DB_IAM_USER="fn@p.iam")
    with pytest.raises(RuntimeError, match="never falls back"):
        app_url(s)


def test_weak_password_hashing_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(Exception, match=r"argon2_memory_kib|ARGON2_MEMORY_KIB"):
        _settings(monkeypatch, ARGON2_MEMORY_KIB="1024")


# --- names: the environment variables are a contract with Terraform and the README ------------------------
ROOT = Path(__file__).resolve().parents[2]
ENV_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")


def _env_names() -> set[str]:
    """Every environment variable Settings reads: each field's alias, or each of its AliasChoices."""
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias if field.validation_alias is not None else field.alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
        names.update(str(c) for c in choices)
    return names


def _terraform_env_names() -> set[str]:
    """The variables infra/ gives the functions: local.common_env, the literal maps merged into
    local.function_env, and the secrets' ``env`` names (infra/secrets.tf)."""
    names: set[str] = set()
    with (ROOT / "infra" / "functions.tf").open(encoding="utf-8") as fh:
        functions_tf = hcl2.load(fh)
    found = 0
    for block in functions_tf.get("locals", []):
        if "common_env" in block:
            names.update(block["common_env"])
            found += 1
        if "function_env" in block:
            # An HCL expression (a for over merge(...)); the literal map keys are NAME = value.
            names.update(re.findall(r"[{,]\s*([A-Z][A-Z0-9_]*)\s*=", str(block["function_env"])))
            found += 1
    assert found == 2, "local.common_env / local.function_env not found in infra/functions.tf"
    with (ROOT / "infra" / "secrets.tf").open(encoding="utf-8") as fh:
        secrets_tf = hcl2.load(fh)
    for block in secrets_tf.get("locals", []):
        for secret in block.get("secrets", {}).values():
            names.add(str(secret["env"]).strip('"'))
    return names


def _readme_env_names() -> set[str]:
    """The variable column of every table in the README's "Configuration" section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = re.search(r"^## Configuration\n(.*?)(?=^## )", text, re.S | re.M)
    assert section, "README.md has no '## Configuration' section"
    names: set[str] = set()
    for line in section.group(1).splitlines():
        cells = line.split("|")
        if line.startswith("|") and len(cells) > 2:
            names.update(re.findall(r"`([^`]+)`", cells[1]))
    return names


def test_terraform_sets_only_variables_that_settings_reads() -> None:
    terraform = _terraform_env_names()
    # The parse found the map keys, not nothing: these are set on every function or some of them.
    assert {"EARNPAY_ENV", "KYC_BUCKET", "DB_IAM_USER", "DB_POOL_SIZE", "PAYOUT_DETAILS_KEK", "PAYOUT_PROVIDER_API_KEY"} <= terraform
    assert all(ENV_NAME.match(n) for n in terraform), terraform
    assert terraform - _env_names() == set(), "Terraform sets variables that are not Settings fields (or aliases)"


def test_the_readme_documents_exactly_the_settings() -> None:
    documented = _readme_env_names()
    assert len(documented) > 40 and all(ENV_NAME.match(n) for n in documented), documented
    assert documented - _env_names() == set(), "the README documents variables that are not Settings fields"
    assert _env_names() - documented == set(), "Settings fields missing from the README's Configuration tables"


def test_every_field_has_a_description() -> None:
    assert [name for name, f in Settings.model_fields.items() if not f.description] == []


# --- values -------------------------------------------------------------------------------------------------
def test_the_kms_key_has_the_terraform_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KMS_PAYOUT_KEY_NAME", raising=False)
    assert _settings(monkeypatch, PAYOUT_DETAILS_KEK=" projects/p/locations/l/keyRings/r/cryptoKeys/k ").kms_payout_key_name == (
        "projects/p/locations/l/keyRings/r/cryptoKeys/k"
    )
    s = _settings(monkeypatch, PAYOUT_DETAILS_KEK="from-terraform", KMS_PAYOUT_KEY_NAME="explicit")
    assert s.kms_payout_key_name == "explicit"


def test_defaults_of_the_folded_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    names = ("PAYOUT_", "PAYPAL_", "KMS_", "LOCAL_KEK_FILE", "CREDIT_REQUEST_MAX_MICROS", "OUTBOX_", "PG_BIN_DIR", "KYC_", "EXPORTS_")
    for key in list(os.environ):
        if key.startswith(names):
            monkeypatch.delenv(key)
    s = _settings(monkeypatch)
    assert (s.kyc_bucket, s.exports_bucket) == ("earnpay-local-kyc", "earnpay-local-exports")
    assert s.kms_payout_key_name is None and s.kms_endpoint == "https://cloudkms.googleapis.com"
    assert s.local_kek_file == ROOT / ".data" / "local-kek"
    assert s.credit_request_max_micros == 1_000_000_000 and s.outbox_publish_after_commit is True and s.pg_bin_dir is None
    assert (s.payout_minimum_cents, s.payout_max_methods, s.payout_batch_size) == (1000, 5, 1000)
    assert (s.payout_lease_seconds, s.payout_retry_seconds, s.payout_stuck_after_attempts) == (600, 60, 10)
    assert s.payout_provider is None and s.paypal_base_url is None and s.paypal_timeout_s == 20
    assert s.db_ip_type == "PRIVATE"


def test_secrets_are_never_printed_and_empty_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    s = _settings(monkeypatch, PAYPAL_CLIENT_SECRET="hunter2-secret", PAYOUT_PROVIDER_API_KEY="id:key-secret", PAYPAL_BASE_URL="")
    assert "hunter2-secret" not in repr(s) and "key-secret" not in str(s.model_dump())
    assert s.paypal_client_secret is not None and s.paypal_client_secret.get_secret_value() == "hunter2-secret"
    assert s.paypal_base_url is None


@pytest.mark.parametrize(
    "env",
    [
        {"PAYOUT_MINIMUM_CENTS": "0"},
        {"PAYOUT_MAX_METHODS": "51"},
        {"PAYOUT_BATCH_SIZE": "10001"},
        {"PAYOUT_PROVIDER": "stripe"},
        {"CREDIT_REQUEST_MAX_MICROS": str(10**15)},
        {"PAYPAL_TIMEOUT_S": "0"},
        {"OUTBOX_PUBLISH_AFTER_COMMIT": "sometimes"},
        {"KYC_BUCKET": "ab"},
    ],
)
def test_values_out_of_bounds_are_refused(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        _settings(monkeypatch, **env)


def test_get_settings_rereads_after_cache_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYOUT_PROVIDER", raising=False)
    monkeypatch.setenv("PAYOUT_MAX_METHODS", "7")
    get_settings.cache_clear()
    assert get_settings().payout_max_methods == 7 and get_settings() is get_settings()
    monkeypatch.setenv("PAYOUT_PROVIDER", " PayPal ")
    assert get_settings().payout_provider is None  # cached until cleared
    get_settings.cache_clear()
    assert get_settings().payout_provider == "paypal"
    monkeypatch.setenv("PAYOUT_MAX_METHODS", "0")
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="PAYOUT_MAX_METHODS"):
        get_settings()
    get_settings.cache_clear()  # (tests/conftest.py clears it again once monkeypatch restored the environment)
