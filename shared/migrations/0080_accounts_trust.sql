-- Accounts people can trust (issue 11): email verification, single-use account tokens, staff
-- two-factor (TOTP) with recovery codes and step-up, user notifications and their email delivery.

-- Outbox rows now name their Pub/Sub topic: domain events keep going to domain-events, notification
-- messages go to notifications. One outbox, one publisher, one sweep; the row says where it goes.
ALTER TABLE outbox ADD COLUMN topic TEXT NOT NULL DEFAULT 'domain-events'
    CHECK (topic ~ '^[a-z][a-z0-9-]{2,62}$');

-- NULL until the owner of the address proves it (the link sent at sign-up). Accounts that existed
-- before this migration were created without the check: they stay unverified until they verify.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;

-- Single-use tokens sent by email: only the SHA-256 of the token is stored. The purpose is part of
-- the lookup, so a token made for one purpose (verify) can never be spent on another (reset).
-- new_email: for 'change_email', the address being proved; it takes effect when the token is used.
CREATE TABLE account_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id),
    purpose     TEXT NOT NULL CHECK (purpose IN ('verify_email', 'change_email', 'reset_password')),
    token_hash  BYTEA NOT NULL CHECK (length(token_hash) = 32),
    new_email   TEXT CHECK (new_email = lower(new_email) AND length(new_email) BETWEEN 3 AND 254),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL,
    -- set when the token is spent, or superseded by a newer token of the same purpose
    used_at     TIMESTAMPTZ,
    CHECK (expires_at > created_at),
    CHECK ((purpose = 'change_email') = (new_email IS NOT NULL))
);
CREATE UNIQUE INDEX idx_account_tokens_hash ON account_tokens (token_hash);
CREATE INDEX idx_account_tokens_user_live ON account_tokens (user_id, purpose) WHERE used_at IS NULL;

GRANT SELECT, INSERT, DELETE ON account_tokens TO earnpay_app;
GRANT UPDATE (used_at) ON account_tokens TO earnpay_app;

-- Staff two-factor: one TOTP secret per account (RFC 6238, 30 s steps). confirmed_at is NULL during
-- enrolment (the secret was shown, no code proved it yet). last_step is the time step of the last
-- accepted code, so a code is accepted at most once. failures/locked_until: wrong codes lock.
CREATE TABLE user_mfa (
    user_id      UUID PRIMARY KEY REFERENCES users (id),
    secret       TEXT NOT NULL CHECK (secret ~ '^[A-Z2-7]{32}$'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    confirmed_at TIMESTAMPTZ,
    last_step    BIGINT NOT NULL DEFAULT 0 CHECK (last_step >= 0),
    failures     INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),
    locked_until TIMESTAMPTZ
);
GRANT SELECT, INSERT, UPDATE, DELETE ON user_mfa TO earnpay_app;

-- Ten single-use recovery codes per enrolment, stored as SHA-256 (they are 80-bit random values,
-- so a fast hash is enough); used_at makes each one single-use.
CREATE TABLE mfa_recovery_codes (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    code_hash  BYTEA NOT NULL CHECK (length(code_hash) = 32),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    used_at    TIMESTAMPTZ,
    UNIQUE (user_id, code_hash)
);
GRANT SELECT, INSERT, DELETE ON mfa_recovery_codes TO earnpay_app;
GRANT UPDATE (used_at) ON mfa_recovery_codes TO earnpay_app;

-- A session records when its holder proved the second factor (at login or enrolment) and when last
-- (step-up: money moves need a code entered within the last five minutes).
ALTER TABLE sessions ADD COLUMN mfa_at TIMESTAMPTZ, ADD COLUMN step_up_at TIMESTAMPTZ;
GRANT UPDATE (mfa_at, step_up_at) ON sessions TO earnpay_app;

-- What we told a user (listed by GET /auth/notifications) and, when it goes by email, its delivery.
-- email_sent_at is the send_notifications dedup: a redelivered message finds it set and sends nothing.
CREATE TABLE notifications (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       UUID NOT NULL REFERENCES users (id),
    kind          TEXT NOT NULL CHECK (kind ~ '^[a-z][a-z0-9_]{0,62}$'),
    data          JSONB NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(data) = 'object'),
    -- the address the email goes to (the old address for an email-changed notice); NULL: no email
    email_to      TEXT CHECK (length(email_to) BETWEEN 3 AND 254),
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    email_sent_at TIMESTAMPTZ,
    email_attempts INTEGER NOT NULL DEFAULT 0 CHECK (email_attempts >= 0),
    CHECK (email_sent_at IS NULL OR email_to IS NOT NULL)
);
CREATE INDEX idx_notifications_user ON notifications (user_id, created_at DESC, id DESC);
-- DELETE: an erasure removes a user's notifications (they hold addresses, IPs, devices).
GRANT SELECT, INSERT, DELETE ON notifications TO earnpay_app;
GRANT UPDATE (email_sent_at, email_attempts) ON notifications TO earnpay_app;

-- Devices a user signed in from (a hash of IP /24 or /48 prefix and user agent): a sign-in from a
-- device not seen before sends a notification.
CREATE TABLE known_devices (
    user_id     UUID NOT NULL REFERENCES users (id),
    device_hash BYTEA NOT NULL CHECK (length(device_hash) = 32),
    first_seen  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, device_hash)
);
GRANT SELECT, INSERT, DELETE ON known_devices TO earnpay_app;
