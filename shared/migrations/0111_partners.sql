-- Partners: rewarded-video networks and offerwalls that credit users by signed server-to-server
-- callbacks (docs/partners.md). Configuration (partners, partner_secrets) is written by the admin
-- API; every callback is logged (partner_callbacks), and each reward is applied once per
-- (partner, transaction id) (partner_rewards, whose primary key is that promise).

CREATE TABLE partners (
    id                        TEXT PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9_-]{1,39}$'),
    name                      TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    kind                      TEXT NOT NULL CHECK (kind IN ('rewarded_video', 'offerwall')),
    enabled                   BOOLEAN NOT NULL DEFAULT false,
    -- the partner's currency ("coins") in our micro-dollars: what the user gets, and what the
    -- partner pays us, per unit
    reward_micros_per_unit    BIGINT NOT NULL CHECK (reward_micros_per_unit BETWEEN 1 AND 1000000000),
    revenue_micros_per_unit   BIGINT NOT NULL CHECK (revenue_micros_per_unit BETWEEN 0 AND 1000000000),
    max_units                 BIGINT NOT NULL CHECK (max_units BETWEEN 1 AND 1000000000),
    -- rewards credited per user per UTC day from this partner; beyond it a callback is refused
    daily_cap_micros          BIGINT NOT NULL CHECK (daily_cap_micros > 0),
    clearing_hours            INTEGER NOT NULL CHECK (clearing_hours BETWEEN 0 AND 8760),
    -- rewarded video: where the network publishes its verifying public keys
    key_url                   TEXT CHECK (key_url ~ '^https?://'),
    -- offerwall: addresses the postbacks may come from (NULL: any); both kinds: how far a callback's
    -- time may be from ours
    allowed_sources           CIDR[],
    timestamp_window_seconds  INTEGER NOT NULL DEFAULT 3600 CHECK (timestamp_window_seconds BETWEEN 10 AND 604800),
    -- what the partner's protocol expects back
    answer_ok                 TEXT NOT NULL DEFAULT '1' CHECK (length(answer_ok) <= 500),
    answer_error              TEXT NOT NULL DEFAULT '0' CHECK (length(answer_error) <= 500),
    answer_content_type       TEXT NOT NULL DEFAULT 'text/plain' CHECK (answer_content_type IN ('text/plain', 'application/json')),
    error_status              INTEGER NOT NULL DEFAULT 400 CHECK (error_status IN (200, 400, 403, 409, 422)),
    created_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at                TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((kind = 'rewarded_video') = (key_url IS NOT NULL)),
    CHECK (kind = 'offerwall' OR allowed_sources IS NULL)
);

-- Offerwall signing secrets, encrypted (shared/crypto envelope: Cloud KMS in production, the local
-- key file elsewhere). Rotation adds a version and gives the previous ones a retirement time: both
-- verify until then (the overlap window), so the partner can switch without a refused postback.
CREATE TABLE partner_secrets (
    partner_id  TEXT NOT NULL REFERENCES partners (id),
    version     INTEGER NOT NULL CHECK (version > 0),
    envelope    JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    retires_at  TIMESTAMPTZ,
    PRIMARY KEY (partner_id, version)
);

-- One row per applied reward: the primary key is "once per (partner, transaction id)". The hash
-- covers what decides the money (user, units), so a redelivery with other content is recognised.
-- revenue_micros is what the partner owes us for it, beside the reward (the finance report).
CREATE TABLE partner_rewards (
    partner_id        TEXT NOT NULL REFERENCES partners (id),
    transaction_id    TEXT NOT NULL CHECK (length(transaction_id) BETWEEN 1 AND 128),
    user_id           UUID NOT NULL REFERENCES users (id),
    units             BIGINT NOT NULL CHECK (units > 0),
    reward_micros     BIGINT NOT NULL CHECK (reward_micros > 0),
    revenue_micros    BIGINT NOT NULL CHECK (revenue_micros >= 0),
    request_hash      BYTEA NOT NULL,
    entry_id          BIGINT NOT NULL UNIQUE,
    credited_on       DATE NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- a reversal: 'clawback' while pending, 'recovery' once cleared (docs/ledger.md)
    reversed_at       TIMESTAMPTZ,
    reversed_on       DATE,
    reversal_kind     TEXT CHECK (reversal_kind IN ('clawback', 'recovery')),
    reversal_entry_id BIGINT,
    PRIMARY KEY (partner_id, transaction_id),
    CHECK ((reversed_at IS NULL) = (reversal_kind IS NULL)
           AND (reversed_at IS NULL) = (reversal_entry_id IS NULL)
           AND (reversed_at IS NULL) = (reversed_on IS NULL))
);
-- The daily cap: rewards of one user from one partner on one day.
CREATE INDEX idx_partner_rewards_user_day ON partner_rewards (partner_id, user_id, credited_on);
CREATE INDEX idx_partner_rewards_day ON partner_rewards (credited_on, partner_id);
CREATE INDEX idx_partner_rewards_reversed_day ON partner_rewards (reversed_on, partner_id) WHERE reversed_on IS NOT NULL;

-- Every callback, applied or refused, with its reason. partner_ref is what the caller named (an
-- unknown partner too), so no foreign key; values are truncated by the application.
CREATE TABLE partner_callbacks (
    id             BIGSERIAL PRIMARY KEY,
    partner_ref    TEXT NOT NULL CHECK (length(partner_ref) <= 64),
    kind           TEXT NOT NULL CHECK (kind IN ('reward', 'reversal')),
    transaction_id TEXT CHECK (length(transaction_id) <= 128),
    user_ref       TEXT CHECK (length(user_ref) <= 64),
    outcome        TEXT NOT NULL CHECK (outcome IN ('applied', 'duplicate', 'refused')),
    reason         TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 64),
    source_ip      TEXT NOT NULL CHECK (length(source_ip) <= 64),
    query          TEXT NOT NULL CHECK (length(query) <= 2048),
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_partner_callbacks_partner ON partner_callbacks (partner_ref, received_at DESC);

GRANT SELECT, INSERT ON partners TO earnpay_app;
GRANT UPDATE (name, enabled, reward_micros_per_unit, revenue_micros_per_unit, max_units, daily_cap_micros, clearing_hours,
              key_url, allowed_sources, timestamp_window_seconds, answer_ok, answer_error, answer_content_type, error_status,
              updated_at) ON partners TO earnpay_app;
GRANT SELECT, INSERT ON partner_secrets TO earnpay_app;
GRANT UPDATE (retires_at) ON partner_secrets TO earnpay_app;
GRANT SELECT, INSERT ON partner_rewards TO earnpay_app;
GRANT UPDATE (reversed_at, reversed_on, reversal_kind, reversal_entry_id) ON partner_rewards TO earnpay_app;
GRANT SELECT, INSERT ON partner_callbacks TO earnpay_app;
GRANT USAGE ON SEQUENCE partner_callbacks_id_seq TO earnpay_app;
