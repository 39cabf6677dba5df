-- Foundation: the application role, accounts, sessions, login attempts, rate limits, idempotency keys.
--
-- Migrations run as the schema owner. The functions connect as members of the NOLOGIN role
-- earnpay_app (IAM database users in Cloud SQL), which gets only the privileges each table needs:
-- that is what lets the database itself refuse, say, UPDATE on the ledger.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'earnpay_app') THEN
        CREATE ROLE earnpay_app NOLOGIN;
    END IF;
END
$$;

REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO earnpay_app;
GRANT SELECT ON schema_migrations TO earnpay_app;

-- Accounts. Emails are stored normalised (trimmed, lower case) so one UNIQUE index makes them
-- case-insensitively unique; the CHECK keeps every writer honest.
CREATE TABLE users (
    id                  UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email               TEXT NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
    password_hash       TEXT NOT NULL,
    display_name        TEXT NOT NULL CHECK (length(display_name) BETWEEN 1 AND 80),
    -- 8 characters from an alphabet without 0/O/1/I/L: easy to read aloud and type.
    referral_code       TEXT NOT NULL CHECK (referral_code ~ '^[23456789ABCDEFGHJKMNPQRSTUVWXYZ]{8}$'),
    referred_by         UUID REFERENCES users (id),
    kyc_status          TEXT NOT NULL DEFAULT 'none'
                        CHECK (kyc_status IN ('none', 'pending', 'in_review', 'verified', 'rejected')),
    role                TEXT NOT NULL DEFAULT 'user'
                        CHECK (role IN ('user', 'support', 'finance', 'compliance', 'admin')),
    status              TEXT NOT NULL DEFAULT 'active'
                        CHECK (status IN ('active', 'suspended', 'blocked', 'erased')),
    created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    password_changed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    erased_at           TIMESTAMPTZ,
    CHECK (referred_by IS NULL OR referred_by <> id)
);
-- The indexes the product document lists on users (email and referral code unique by design).
CREATE UNIQUE INDEX idx_users_email ON users (email);
CREATE UNIQUE INDEX idx_users_referral_code ON users (referral_code);
CREATE INDEX idx_users_kyc_status ON users (kyc_status);
CREATE INDEX idx_users_referred_by ON users (referred_by) WHERE referred_by IS NOT NULL;
CREATE INDEX idx_users_role ON users (role) WHERE role <> 'user';

GRANT SELECT, INSERT, UPDATE ON users TO earnpay_app;

-- Sessions: only the SHA-256 of the token is stored; timeouts are fixed per session at login
-- (staff get shorter ones), so changing the configuration never extends a live session.
CREATE TABLE sessions (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id),
    token_hash     BYTEA NOT NULL CHECK (length(token_hash) = 32),
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    last_seen_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    idle_timeout   INTERVAL NOT NULL CHECK (idle_timeout > interval '0'),
    expires_at     TIMESTAMPTZ NOT NULL,
    revoked_at     TIMESTAMPTZ,
    revoked_reason TEXT,
    ip             INET,
    user_agent     TEXT CHECK (length(user_agent) <= 256),
    CHECK (expires_at > created_at)
);
CREATE UNIQUE INDEX idx_sessions_token_hash ON sessions (token_hash);
CREATE INDEX idx_sessions_user_live ON sessions (user_id) WHERE revoked_at IS NULL;
CREATE INDEX idx_sessions_expires_at ON sessions (expires_at);

GRANT SELECT, INSERT, UPDATE (last_seen_at, revoked_at, revoked_reason) ON sessions TO earnpay_app;

-- Every login attempt, kept for the soft lock, the per-IP throttle and investigations.
CREATE TABLE login_attempts (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email       TEXT NOT NULL CHECK (length(email) <= 320),
    user_id     UUID REFERENCES users (id),
    ip          INET,
    succeeded   BOOLEAN NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_login_attempts_email ON login_attempts (email, created_at DESC);
CREATE INDEX idx_login_attempts_user ON login_attempts (user_id, created_at DESC) WHERE user_id IS NOT NULL;
CREATE INDEX idx_login_attempts_created_at ON login_attempts (created_at);

GRANT SELECT, INSERT ON login_attempts TO earnpay_app;

-- Fixed-window counters shared by every function instance. UNLOGGED: counters lost in a crash
-- cost nothing, and skipping the WAL keeps the per-request upsert cheap.
CREATE UNLOGGED TABLE rate_limits (
    bucket       TEXT PRIMARY KEY,
    window_start TIMESTAMPTZ NOT NULL,
    hits         INTEGER NOT NULL CHECK (hits > 0)
);

GRANT SELECT, INSERT, UPDATE ON rate_limits TO earnpay_app;

-- Idempotency-Key records for retried writes (the first answer is replayed).
CREATE TABLE idempotency_keys (
    user_id      UUID NOT NULL REFERENCES users (id),
    key          TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 128),
    request_hash BYTEA NOT NULL,
    status       INTEGER CHECK (status BETWEEN 200 AND 499),
    response     JSONB,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    completed_at TIMESTAMPTZ,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idx_idempotency_keys_created_at ON idempotency_keys (created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO earnpay_app;
