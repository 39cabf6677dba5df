"""One typed settings object, read once from the environment."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

Environment = Literal["local", "test", "staging", "production"]


class ConfigError(RuntimeError):
    """Raised at start-up when the environment cannot produce a working configuration."""


class Settings(BaseSettings):
    """Every knob of the platform. Safe local defaults; production must say where its database is."""

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True)

    env: Environment = Field("local", alias="EARNPAY_ENV")
    k_service: str | None = Field(None, alias="K_SERVICE", description="set by Cloud Functions/Run")
    gcp_project: str = Field("earnpay-local", alias="GCP_PROJECT")

    # --- database -------------------------------------------------------------------------------
    database_url: str | None = Field(None, alias="DATABASE_URL", description="the functions' connection (application role)")
    migrate_database_url: str | None = Field(
        None, alias="MIGRATE_DATABASE_URL", description="the schema owner's connection for migrations; defaults to DATABASE_URL"
    )
    replica_database_url: str | None = Field(None, alias="REPLICA_DATABASE_URL")
    db_instance_connection_name: str | None = Field(None, alias="DB_INSTANCE_CONNECTION_NAME")
    db_replica_connection_name: str | None = Field(None, alias="DB_REPLICA_CONNECTION_NAME")
    db_name: str = Field("earnpay", alias="DB_NAME")
    db_iam_user: str | None = Field(None, alias="DB_IAM_USER")
    db_pool_size: int = Field(5, alias="DB_POOL_SIZE", ge=1, le=100)
    db_pool_max_overflow: int = Field(0, alias="DB_POOL_MAX_OVERFLOW", ge=0, le=100)
    db_pool_timeout_s: float = Field(5.0, alias="DB_POOL_TIMEOUT_S", gt=0)
    db_ping_after_idle_s: float = Field(
        10.0, alias="DB_PING_AFTER_IDLE_S", ge=0, description="health-check a pooled connection idle longer than this"
    )
    db_statement_timeout_ms: int = Field(30_000, alias="DB_STATEMENT_TIMEOUT_MS", ge=100)
    slow_query_ms: float = Field(500.0, alias="SLOW_QUERY_MS", gt=0)
    embedded_pgdata: Path = Field(ROOT / ".data" / "pg", alias="EMBEDDED_PGDATA")

    # --- sessions and login protection ----------------------------------------------------------
    session_idle_minutes: int = Field(7 * 24 * 60, alias="SESSION_IDLE_MINUTES", ge=1)
    session_absolute_hours: int = Field(30 * 24, alias="SESSION_ABSOLUTE_HOURS", ge=1)
    staff_session_idle_minutes: int = Field(30, alias="STAFF_SESSION_IDLE_MINUTES", ge=1)
    staff_session_absolute_hours: int = Field(8, alias="STAFF_SESSION_ABSOLUTE_HOURS", ge=1)
    login_max_failures: int = Field(5, alias="LOGIN_MAX_FAILURES", ge=1)
    login_failure_window_minutes: int = Field(15, alias="LOGIN_FAILURE_WINDOW_MINUTES", ge=1)
    login_lock_minutes: int = Field(15, alias="LOGIN_LOCK_MINUTES", ge=1)
    ip_login_per_minute: int = Field(30, alias="IP_LOGIN_PER_MINUTE", ge=1)
    ip_signup_per_hour: int = Field(20, alias="IP_SIGNUP_PER_HOUR", ge=1)
    user_requests_per_minute: int = Field(600, alias="USER_REQUESTS_PER_MINUTE", ge=1)
    argon2_time_cost: int = Field(2, alias="ARGON2_TIME_COST", ge=2)
    argon2_memory_kib: int = Field(19_456, alias="ARGON2_MEMORY_KIB", ge=19_456)
    argon2_parallelism: int = Field(1, alias="ARGON2_PARALLELISM", ge=1)

    # --- HTTP -----------------------------------------------------------------------------------
    max_body_bytes: int = Field(64 * 1024, alias="MAX_BODY_BYTES", ge=1024)
    trust_forwarded_for: bool = Field(True, alias="TRUST_FORWARDED_FOR")

    # --- events ---------------------------------------------------------------------------------
    pubsub_enabled: bool = Field(False, alias="PUBSUB_ENABLED")

    @model_validator(mode="after")
    def _production_needs_a_real_database(self) -> Settings:
        if self.is_production:
            if not (self.database_url or self.db_instance_connection_name):
                raise ConfigError(
                    "production settings missing: set DB_INSTANCE_CONNECTION_NAME (Cloud SQL) or DATABASE_URL; "
                    "a deployed function never falls back to the embedded database"
                )
            if self.db_instance_connection_name and not self.db_iam_user:
                raise ConfigError("production settings missing: DB_IAM_USER is required with DB_INSTANCE_CONNECTION_NAME")
        return self

    @property
    def is_production(self) -> bool:
        """True when deployed (Cloud Functions sets K_SERVICE) or told it is staging/production."""
        return bool(self.k_service) or self.env in ("staging", "production")

    @property
    def uses_embedded_database(self) -> bool:
        return not (self.database_url or self.db_instance_connection_name)


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once; tests call ``get_settings.cache_clear()`` to re-read)."""
    try:
        return Settings()
    except ConfigError:
        raise
    except Exception as exc:  # pydantic's ValidationError, reworded once for operators
        raise ConfigError(f"invalid configuration: {exc}") from exc
