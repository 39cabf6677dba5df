"""Configuration: safe local defaults, and production never falls back to the embedded database."""

from __future__ import annotations

import pytest

from shared.config import ConfigError, Settings


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
