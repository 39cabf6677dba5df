"""One typed settings object, read once from the environment."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent

Environment = Literal["local", "test", "staging", "production"]

# The ledger's largest single entry ($1,000,000; functions/ledger/service.py MAX_ENTRY): no credit request
# and no payout can be larger. Repeated here because shared/ never imports from functions/.
MICROS_PER_DOLLAR = 1_000_000
LEDGER_MAX_ENTRY_MICROS = 1_000_000 * MICROS_PER_DOLLAR
MAX_PAYOUT_CENTS = 1_000_000 * 100


class ConfigError(RuntimeError):
    """Raised at start-up when the environment cannot produce a working configuration."""


class Settings(BaseSettings):
    """Every knob of the platform. Safe local defaults; production must say where its database is.

    The environment variable names (the aliases) are a contract with infra/functions.tf and the README's
    "Configuration" table; tests/shared/test_config.py keeps the three in step. An empty variable counts
    as unset (``env_ignore_empty``), as the ``os.environ.get(X) or default`` readers this replaces did.
    """

    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, populate_by_name=True, env_ignore_empty=True)

    env: Environment = Field("local", alias="EARNPAY_ENV", description="local | test | staging | production")
    k_service: str | None = Field(None, alias="K_SERVICE", description="set by Cloud Functions/Run; when set, the process is deployed")
    gcp_project: str = Field("earnpay-local", alias="GCP_PROJECT", description="project of Pub/Sub topics and Cloud Storage clients")
    log_execution_id: bool = Field(
        False,
        alias="LOG_EXECUTION_ID",
        description="read by functions-framework itself (adds the execution id to log entries); listed here so the name is documented",
    )

    # --- database -------------------------------------------------------------------------------
    database_url: str | None = Field(None, alias="DATABASE_URL", description="the functions' connection (application role)")
    migrate_database_url: str | None = Field(
        None, alias="MIGRATE_DATABASE_URL", description="the schema owner's connection for migrations; defaults to DATABASE_URL"
    )
    replica_database_url: str | None = Field(None, alias="REPLICA_DATABASE_URL", description="read replica's connection (optional)")
    db_instance_connection_name: str | None = Field(
        None, alias="DB_INSTANCE_CONNECTION_NAME", description="Cloud SQL instance (project:region:instance); IAM auth"
    )
    db_replica_connection_name: str | None = Field(None, alias="DB_REPLICA_CONNECTION_NAME", description="Cloud SQL read replica instance")
    db_ip_type: Literal["PRIVATE", "PUBLIC", "PSC"] = Field(
        "PRIVATE", alias="DB_IP_TYPE", description="how the Cloud SQL connector reaches the instance"
    )
    db_name: str = Field("earnpay", alias="DB_NAME", description="database name")
    db_iam_user: str | None = Field(
        None, alias="DB_IAM_USER", description="IAM database user (service account email without .gserviceaccount.com)"
    )
    db_pool_size: int = Field(5, alias="DB_POOL_SIZE", ge=1, le=100, description="pooled connections per instance")
    db_pool_max_overflow: int = Field(0, alias="DB_POOL_MAX_OVERFLOW", ge=0, le=100, description="extra connections beyond the pool")
    db_pool_timeout_s: float = Field(5.0, alias="DB_POOL_TIMEOUT_S", gt=0, description="wait for a pooled connection")
    db_ping_after_idle_s: float = Field(
        10.0, alias="DB_PING_AFTER_IDLE_S", ge=0, description="health-check a pooled connection idle longer than this"
    )
    db_statement_timeout_ms: int = Field(30_000, alias="DB_STATEMENT_TIMEOUT_MS", ge=100, description="statement_timeout of every session")
    slow_query_ms: float = Field(500.0, alias="SLOW_QUERY_MS", gt=0, description="log statements slower than this")
    embedded_pgdata: Path = Field(
        ROOT / ".data" / "pg", alias="EMBEDDED_PGDATA", description="data directory of the local embedded PostgreSQL"
    )

    # --- sessions and login protection ----------------------------------------------------------
    session_idle_minutes: int = Field(
        7 * 24 * 60, alias="SESSION_IDLE_MINUTES", ge=1, description="a user session expires after this idle time"
    )
    session_absolute_hours: int = Field(30 * 24, alias="SESSION_ABSOLUTE_HOURS", ge=1, description="a user session's maximum lifetime")
    staff_session_idle_minutes: int = Field(30, alias="STAFF_SESSION_IDLE_MINUTES", ge=1, description="same, staff sessions")
    staff_session_absolute_hours: int = Field(8, alias="STAFF_SESSION_ABSOLUTE_HOURS", ge=1, description="same, staff sessions")
    login_max_failures: int = Field(5, alias="LOGIN_MAX_FAILURES", ge=1, description="failed logins (from an unknown IP) before a lock")
    login_failure_window_minutes: int = Field(15, alias="LOGIN_FAILURE_WINDOW_MINUTES", ge=1, description="window of those failures")
    login_lock_minutes: int = Field(15, alias="LOGIN_LOCK_MINUTES", ge=1, description="how long the account stays locked")
    ip_login_per_minute: int = Field(30, alias="IP_LOGIN_PER_MINUTE", ge=1, description="login attempts per IP per minute")
    ip_signup_per_hour: int = Field(20, alias="IP_SIGNUP_PER_HOUR", ge=1, description="sign-ups per IP per hour")
    user_requests_per_minute: int = Field(
        600, alias="USER_REQUESTS_PER_MINUTE", ge=1, description="authenticated requests per user per minute"
    )
    argon2_time_cost: int = Field(2, alias="ARGON2_TIME_COST", ge=2, description="argon2id passes (OWASP minimum 2)")
    argon2_memory_kib: int = Field(19_456, alias="ARGON2_MEMORY_KIB", ge=19_456, description="argon2id memory (OWASP minimum 19 MiB)")
    argon2_parallelism: int = Field(1, alias="ARGON2_PARALLELISM", ge=1, description="argon2id lanes")

    # --- HTTP -----------------------------------------------------------------------------------
    max_body_bytes: int = Field(64 * 1024, alias="MAX_BODY_BYTES", ge=1024, description="largest request body accepted")
    trusted_proxy_hops: int = Field(
        0,
        alias="TRUSTED_PROXY_HOPS",
        ge=0,
        le=5,
        description="proxies in front of the service that append to X-Forwarded-For (0: the peer address is the caller; "
        "Cloud Functions: 1; behind an external HTTPS load balancer: 2; docs/deploy.md)",
    )
    idempotency_lease_s: float = Field(
        5.0,
        alias="IDEMPOTENCY_LEASE_S",
        gt=0,
        le=300,
        description="an Idempotency-Key's claim lease: a retry within it gets 409 request_in_progress, after it runs the request again",
    )
    fault_pause: str | None = Field(
        None,
        alias="EARNPAY_FAULT_PAUSE",
        description="tests only, refused when deployed: before_call=S,after_call=S[,until=FILE] pauses keyed requests "
        "(shared/idempotency.py)",
    )

    # --- accounts: email, tokens, two-factor ----------------------------------------------------
    public_base_url: str = Field(
        "http://127.0.0.1:8080",
        alias="PUBLIC_BASE_URL",
        description="the app's public address: every link in an email is built from it",
    )
    mail_from: str = Field("EarnPay <no-reply@earnpay.local>", alias="MAIL_FROM", description="the From of every email")
    smtp_host: str = Field("127.0.0.1", alias="SMTP_HOST", description="SMTP server that sends email (locally: the one `serve` starts)")
    smtp_port: int = Field(8025, alias="SMTP_PORT", ge=1, le=65535, description="its port (587 with STARTTLS, 465 with implicit TLS)")
    smtp_tls: Literal["none", "starttls", "tls"] = Field(
        "none", alias="SMTP_TLS", description="none (local only; refused when deployed) | starttls | tls"
    )
    smtp_username: str | None = Field(None, alias="SMTP_USERNAME", description="SMTP login (with SMTP_PASSWORD)")
    smtp_password: SecretStr | None = Field(None, alias="SMTP_PASSWORD", description="SMTP password, from Secret Manager (never logged)")
    smtp_timeout_s: float = Field(15.0, alias="SMTP_TIMEOUT_S", gt=0, le=120, description="timeout of one SMTP conversation")
    email_verify_hours: int = Field(48, alias="EMAIL_VERIFY_HOURS", ge=1, le=24 * 14, description="lifetime of an email verification link")
    password_reset_minutes: int = Field(30, alias="PASSWORD_RESET_MINUTES", ge=5, le=24 * 60, description="lifetime of a reset link")
    mfa_step_up_minutes: int = Field(
        5, alias="MFA_STEP_UP_MINUTES", ge=1, le=60, description="how long an entered code counts for money moves"
    )
    mfa_max_failures: int = Field(5, alias="MFA_MAX_FAILURES", ge=1, description="wrong second-factor codes before a lock")

    # --- trust and safety (docs/fraud.md) --------------------------------------------------------
    risk_hash_key: SecretStr | None = Field(
        None,
        alias="RISK_HASH_KEY",
        description="HMAC key of device hashes and payout destination fingerprints (Secret Manager when deployed, required there); "
        "unset locally: a fixed development key",
    )

    # --- events ---------------------------------------------------------------------------------
    pubsub_enabled: bool = Field(False, alias="PUBSUB_ENABLED", description="publish to Pub/Sub (off locally unless an emulator is used)")
    outbox_publish_after_commit: bool = Field(
        True,
        alias="OUTBOX_PUBLISH_AFTER_COMMIT",
        description="publish a request's outbox rows at the end of the request, after commit; false: only the sweep publishes",
    )

    # --- Cloud Storage --------------------------------------------------------------------------
    # STORAGE_EMULATOR_HOST is not here: it is the google-cloud-storage library's own variable, read
    # from os.environ where the client is built (shared/storage.py) so the library and we agree.
    kyc_bucket: str = Field("earnpay-local-kyc", alias="KYC_BUCKET", min_length=3, max_length=222, description="KYC documents bucket")
    exports_bucket: str = Field(
        "earnpay-local-exports", alias="EXPORTS_BUCKET", min_length=3, max_length=222, description="privacy exports bucket"
    )
    local_storage_dir: Path = Field(
        ROOT / ".data" / "storage",
        alias="LOCAL_STORAGE_DIR",
        description="where the local GCS emulator of `serve` keeps stored objects (documents, exports survive a restart)",
    )

    # --- encryption of payout details (shared/crypto.py) ----------------------------------------
    kms_payout_key_name: str | None = Field(
        None,
        validation_alias=AliasChoices("KMS_PAYOUT_KEY_NAME", "PAYOUT_DETAILS_KEK"),
        description="Cloud KMS key wrapping payout-detail data keys (projects/P/locations/L/keyRings/R/cryptoKeys/K); "
        "Terraform sets it as PAYOUT_DETAILS_KEK. Unset: the local KEK (refused in production)",
    )
    kms_endpoint: str = Field("https://cloudkms.googleapis.com", alias="KMS_ENDPOINT", description="Cloud KMS REST endpoint")
    local_kek_base64: SecretStr | None = Field(
        None, alias="LOCAL_KEK_BASE64", description="development/test KEK (32 bytes, base64); unset: LOCAL_KEK_FILE"
    )
    local_kek_previous_base64: SecretStr | None = Field(
        None, alias="LOCAL_KEK_PREVIOUS_BASE64", description="older local KEKs still accepted for decryption (comma-separated base64)"
    )
    local_kek_file: Path = Field(
        ROOT / ".data" / "local-kek", alias="LOCAL_KEK_FILE", description="development KEK file, created once (mode 0600) when missing"
    )

    # --- ledger ---------------------------------------------------------------------------------
    credit_request_max_micros: int = Field(
        1_000 * MICROS_PER_DOLLAR,
        alias="CREDIT_REQUEST_MAX_MICROS",
        ge=1,
        le=LEDGER_MAX_ENTRY_MICROS,
        description="largest single credit a publisher may request (micro-dollars; never above the ledger's $1,000,000 entry limit)",
    )
    daily_earning_cap_micros: int = Field(
        5_000_000,
        alias="DAILY_EARNING_CAP_MICROS",
        ge=0,
        description=(
            "video rewards credited per user per UTC day (micro-dollars); what completion would credit beyond it is withheld and recorded"
        ),
    )

    # --- clearing: how long each kind of credit stays pending (docs/ledger.md) ---------------------
    clearing_video_reward_hours: int = Field(
        72, alias="CLEARING_VIDEO_REWARD_HOURS", ge=0, le=24 * 365, description="video rewards clear after this many hours (0: at once)"
    )
    clearing_bonus_hours: int = Field(
        7 * 24, alias="CLEARING_BONUS_HOURS", ge=0, le=24 * 365, description="login and streak bonuses clear after this many hours"
    )
    clearing_referral_hours: int = Field(
        14 * 24,
        alias="CLEARING_REFERRAL_HOURS",
        ge=0,
        le=24 * 365,
        description="referral bonuses and commissions clear this many hours after the referral qualifies",
    )
    clearing_adjustment_hours: int = Field(
        0, alias="CLEARING_ADJUSTMENT_HOURS", ge=0, le=24 * 365, description="credited adjustments (staff, publishers) clear after this"
    )
    clearing_batch_size: int = Field(
        1000, alias="CLEARING_BATCH_SIZE", ge=1, le=50_000, description="entries the clearing task clears per transaction"
    )

    # --- partner callbacks (docs/partners.md) --------------------------------------------------------
    partner_keys_max_age_seconds: int = Field(
        86_400,
        alias="PARTNER_KEYS_MAX_AGE_SECONDS",
        ge=1,
        le=86_400,
        description="how long a rewarded-video network's public keys are trusted before they are fetched again (at most 24 h)",
    )
    partner_keys_refresh_min_seconds: int = Field(
        60,
        alias="PARTNER_KEYS_REFRESH_MIN_SECONDS",
        ge=0,
        le=86_400,
        description="an unknown key_id fetches the keys again at most this often, so forged key ids cannot force endless fetches",
    )
    partner_keys_timeout_seconds: float = Field(
        3.0, alias="PARTNER_KEYS_TIMEOUT_SECONDS", gt=0, le=30, description="timeout of one fetch of a network's key endpoint"
    )
    partner_bad_callback_limit: int = Field(
        30,
        alias="PARTNER_BAD_CALLBACK_LIMIT",
        ge=1,
        description="refused partner callbacks per source address per minute; beyond it callbacks from there are throttled (429)",
    )

    # --- secrets kept outside the code (shared/secrets.py; partner signing secrets) ----------------
    secret_store: Literal["database", "secret_manager"] | None = Field(
        None,
        alias="SECRET_STORE",
        description="where runtime-managed secrets (offerwall signing secrets) live: secret_manager (Google Secret Manager) | "
        "database (encrypted with the payout-details KEK; refused when deployed); unset: secret_manager when deployed, else database",
    )
    secret_manager_endpoint: str | None = Field(
        None,
        alias="SECRET_MANAGER_ENDPOINT",
        pattern=r"^https?://[^\s/]{1,200}$",
        description="Secret Manager REST endpoint; unset: Google's. Tests point it at a local stand-in (anonymous credentials, "
        "refused when deployed)",
    )
    secret_manager_location: str | None = Field(
        None,
        alias="SECRET_MANAGER_LOCATION",
        pattern=r"^[a-z0-9-]{1,40}$",
        description="region of the single user-managed replica of secrets created at runtime (Terraform: the region); "
        "unset: automatic replication",
    )
    secret_manager_timeout_s: float = Field(
        5.0, alias="SECRET_MANAGER_TIMEOUT_S", gt=0, le=60, description="timeout of one Secret Manager call"
    )
    partner_secret_prefix: str = Field(
        "partner-offerwall-",
        alias="PARTNER_SECRET_PREFIX",
        pattern=r"^[a-z][a-z0-9-]{0,40}$",
        description="Secret Manager secret id of an offerwall's signing secret: this prefix + the partner id (IAM grants are "
        "conditioned on it: infra/partners.tf)",
    )
    partner_secret_cache_seconds: int = Field(
        300,
        alias="PARTNER_SECRET_CACHE_SECONDS",
        ge=0,
        le=3600,
        description="how long an instance keeps a partner's resolved signing secrets (a rotation is seen at once regardless)",
    )

    # --- referrals: when a referral counts (docs/ledger.md, "Referrals") ---------------------------
    referral_qualify_min_micros: int = Field(
        50_000,
        alias="REFERRAL_QUALIFY_MIN_MICROS",
        ge=0,
        description="video rewards the referred account must earn before its referral qualifies (micro-dollars)",
    )
    referral_qualify_days: int = Field(
        3, alias="REFERRAL_QUALIFY_DAYS", ge=1, le=365, description="distinct UTC days with video rewards the referred account needs"
    )
    referral_require_kyc: bool = Field(True, alias="REFERRAL_REQUIRE_KYC", description="the referred account must also have verified KYC")
    referral_window_days: int = Field(
        30,
        alias="REFERRAL_WINDOW_DAYS",
        ge=1,
        le=365,
        description="a referral not qualified this many days after the referred sign-up expires; its pending rewards are reversed",
    )
    referral_daily_limit: int = Field(
        5, alias="REFERRAL_DAILY_LIMIT", ge=0, le=10_000, description="newly qualifying referrals per referrer per UTC day"
    )

    # --- payouts --------------------------------------------------------------------------------
    payout_minimum_cents: int = Field(
        1000, alias="PAYOUT_MINIMUM_CENTS", ge=1, le=MAX_PAYOUT_CENTS, description="smallest payout, in cents"
    )
    payout_max_methods: int = Field(5, alias="PAYOUT_MAX_METHODS", ge=1, le=50, description="payout methods per user")
    payout_batch_size: int = Field(1000, alias="PAYOUT_BATCH_SIZE", ge=1, le=10_000, description="payouts claimed per batch")
    payout_lease_seconds: int = Field(600, alias="PAYOUT_LEASE_SECONDS", ge=1, description="a claimed payout is re-claimed after this")
    payout_retry_seconds: int = Field(
        60, alias="PAYOUT_RETRY_SECONDS", ge=0, description="pending/transient payouts are due again after this"
    )
    payout_provider_concurrency: int = Field(
        16, alias="PAYOUT_PROVIDER_CONCURRENCY", ge=1, le=64, description="payouts of a batch handed to the provider at once"
    )
    payout_stuck_after_attempts: int = Field(
        10, alias="PAYOUT_STUCK_AFTER_ATTEMPTS", ge=1, description="from this attempt on, a retry logs payout_stuck at ERROR"
    )

    # --- payout provider (functions/payouts/providers) ------------------------------------------
    # The sandbox provider's SANDBOX_PAYOUT_* failure-injection knobs are not here: see
    # functions/payouts/providers/sandbox.py config_from_env.
    payout_provider: Literal["sandbox", "paypal"] | None = Field(
        None,
        alias="PAYOUT_PROVIDER",
        description="sandbox | paypal; unset: sandbox locally, paypal when deployed (where the sandbox is refused)",
    )
    paypal_client_id: str | None = Field(None, alias="PAYPAL_CLIENT_ID", description="PayPal REST app client id")
    paypal_client_secret: SecretStr | None = Field(None, alias="PAYPAL_CLIENT_SECRET", description="PayPal REST app secret (never logged)")
    payout_provider_api_key: SecretStr | None = Field(
        None,
        alias="PAYOUT_PROVIDER_API_KEY",
        description="client_id:client_secret in one value (the Secret Manager secret Terraform defines); used when the two above are unset",
    )
    paypal_base_url: str | None = Field(
        None,
        alias="PAYPAL_BASE_URL",
        description="PayPal API base URL; unset: live when EARNPAY_ENV=production, PayPal's sandbox otherwise",
    )
    paypal_timeout_s: float = Field(20.0, alias="PAYPAL_TIMEOUT_S", gt=0, le=300, description="timeout of one PayPal API call")

    # --- metrics (shared/metrics.py) -------------------------------------------------------------
    metrics_exporter: Literal["gcp", "file", "none"] | None = Field(
        None, alias="METRICS_EXPORTER", description="gcp (Cloud Monitoring) | file (JSON lines) | none; unset: gcp when deployed, else none"
    )
    metrics_file: Path = Field(ROOT / ".data" / "metrics.jsonl", alias="METRICS_FILE", description="where the file exporter appends")
    metrics_export_interval_s: float = Field(
        60.0, alias="METRICS_EXPORT_INTERVAL_S", ge=0, description="export at the end of the first request this long after the last export"
    )

    # --- traces (shared/tracing.py) -------------------------------------------------------------
    traces_exporter: Literal["gcp", "file", "none"] | None = Field(
        None, alias="TRACES_EXPORTER", description="gcp (Cloud Trace) | file (JSON lines) | none; unset: gcp when deployed, else none"
    )
    traces_file: Path = Field(ROOT / ".data" / "traces.jsonl", alias="TRACES_FILE", description="where the file span exporter appends")
    trace_sample_ratio: float = Field(
        0.01,
        alias="TRACE_SAMPLE_RATIO",
        ge=0,
        le=1,
        description="share of requests traced (a sampled caller's traceparent is always followed)",
    )
    traces_export_interval_s: float = Field(
        10.0,
        alias="TRACES_EXPORT_INTERVAL_S",
        ge=0,
        description="finished spans are exported at the end of the first traced request this long after the last export",
    )

    # --- maintenance ----------------------------------------------------------------------------
    pg_bin_dir: Path | None = Field(
        None, alias="PG_BIN_DIR", description="PostgreSQL 16 client programs for the restore drill; unset: pgserver's, then PATH"
    )

    # --- the staff console ----------------------------------------------------------------------
    console_origins: str = Field(
        "",
        alias="CONSOLE_ORIGINS",
        max_length=2000,
        pattern=r"^(https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)?(,https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?)*$",
        description="origins of the staff console allowed to call the admin and auth functions (CORS), comma-separated; "
        "empty: none (locally the console is served from the API's own origin)",
    )

    @property
    def console_origin_set(self) -> frozenset[str]:
        return frozenset(o for o in self.console_origins.split(",") if o)

    @field_validator("payout_provider", mode="before")
    @classmethod
    def _provider_name(cls, value: object) -> object:
        return (value.strip().lower() or None) if isinstance(value, str) else value

    @field_validator("kms_payout_key_name", mode="before")
    @classmethod
    def _key_name(cls, value: object) -> object:
        return (value.strip() or None) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _production_needs_a_real_database(self) -> Settings:
        if self.is_production:
            if not (self.database_url or self.db_instance_connection_name):
                raise ConfigError(
                    "production settings missing: set DB_INSTANCE_CONNECTION_NAME (Cloud SQL) or DATABASE_URL; "
                    "a deployed function never falls back to the embedded database"
                )
            if self.fault_pause:
                raise ConfigError("EARNPAY_FAULT_PAUSE is for tests only and is refused when deployed")
            if self.db_instance_connection_name and not self.db_iam_user:
                raise ConfigError("production settings missing: DB_IAM_USER is required with DB_INSTANCE_CONNECTION_NAME")
        return self

    @field_validator("fault_pause")
    @classmethod
    def _fault_pause(cls, value: str | None) -> str | None:
        if value:
            for part in value.split(","):
                point, _, arg = part.partition("=")
                if point.strip() == "until" and arg.strip():
                    continue
                if point.strip() not in ("before_call", "after_call") or not 0 < float(arg) <= 60:
                    raise ValueError(f"EARNPAY_FAULT_PAUSE: {part!r} is not before_call|after_call=seconds (0-60) or until=path")
        return value

    @property
    def fault_pauses(self) -> dict[str, str]:
        """EARNPAY_FAULT_PAUSE parsed: seconds by fault point, and ``until`` (a file whose appearance ends
        every pause early); empty when unset."""
        if not self.fault_pause:
            return {}
        return {p.partition("=")[0].strip(): p.partition("=")[2].strip() for p in self.fault_pause.split(",")}

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
