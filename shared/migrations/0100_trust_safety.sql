-- Trust and safety (docs/fraud.md): who is behind each account, rules as data, risk states.
--
-- Signals are kept to what the rules need: an address and its network prefix, a keyed hash of the
-- client's install id (never the id itself), a keyed fingerprint of each payout destination (never
-- the destination), and the canonical form of the email. Privacy erasure (functions/privacy) clears
-- the addresses and hashes of an erased account.

-- --- canonical email (expand) -------------------------------------------------------------------
-- `a.b+x@gmail.com` and `ab@gmail.com` reach one mailbox. The canonical form is lower case, with
-- `+tags` removed for providers that deliver them to the base address and dots removed where the
-- provider ignores them (Gmail). It is computed here, in one place, by trigger: every writer of
-- users.email gets it for free and cannot forget it.
CREATE FUNCTION ep_canonical_email(email TEXT) RETURNS TEXT
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    WITH p AS (
        SELECT split_part(lower(email), '@', 1) AS local,
               CASE split_part(lower(email), '@', 2) WHEN 'googlemail.com' THEN 'gmail.com' ELSE split_part(lower(email), '@', 2) END AS domain
    ), t AS (
        SELECT CASE WHEN domain IN ('gmail.com', 'outlook.com', 'hotmail.com', 'live.com', 'icloud.com', 'me.com',
                                    'protonmail.com', 'proton.me', 'fastmail.com')
                    THEN split_part(local, '+', 1) ELSE local END AS local,
               domain
          FROM p
    )
    SELECT CASE WHEN domain = 'gmail.com' THEN replace(local, '.', '') ELSE local END || '@' || domain FROM t
$$;

ALTER TABLE users
    ADD COLUMN canonical_email TEXT,
    -- an account created before canonical uniqueness whose canonical email another (older) account
    -- already had: it keeps its login, is flagged for the risk rules, and holds no canonical email
    ADD COLUMN canonical_duplicate_of UUID REFERENCES users (id),
    ADD COLUMN risk_state TEXT NOT NULL DEFAULT 'ok' CHECK (risk_state IN ('ok', 'watch', 'review', 'suspended', 'banned')),
    ADD COLUMN risk_state_changed_at TIMESTAMPTZ,
    -- the total enforced score when staff last cleared the account: the rules escalate again only
    -- on more than that (a cleared household is not sent back to review by the same signals)
    ADD COLUMN risk_cleared_score INTEGER NOT NULL DEFAULT 0 CHECK (risk_cleared_score >= 0);

-- Backfill: the oldest account of each canonical email keeps it; later ones point at that account.
WITH ranked AS (
    SELECT id, ep_canonical_email(email) AS canon,
           first_value(id) OVER (PARTITION BY ep_canonical_email(email) ORDER BY created_at, id) AS first_id
      FROM users
)
UPDATE users u
   SET canonical_email = CASE WHEN r.first_id = u.id THEN r.canon END,
       canonical_duplicate_of = CASE WHEN r.first_id = u.id THEN NULL ELSE r.first_id END
  FROM ranked r
 WHERE r.id = u.id;

CREATE UNIQUE INDEX idx_users_canonical_email ON users (canonical_email) WHERE canonical_email IS NOT NULL;
CREATE INDEX idx_users_risk_state ON users (risk_state, risk_state_changed_at) WHERE risk_state <> 'ok';

CREATE FUNCTION ep_users_canonical_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.email IS DISTINCT FROM OLD.email THEN
        NEW.canonical_email := ep_canonical_email(NEW.email);
        NEW.canonical_duplicate_of := NULL;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER trg_users_canonical_email BEFORE INSERT OR UPDATE OF email ON users
    FOR EACH ROW EXECUTE FUNCTION ep_users_canonical_email();

-- (the application role already updates users: migration 0001)

-- --- observations: one row per signup, login, referral, completion and payout request -----------------
CREATE TABLE risk_observations (
    id          BIGSERIAL PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id),
    kind        TEXT NOT NULL CHECK (kind IN ('signup', 'login', 'completion', 'referral', 'payout_request')),
    -- NULL once erased (or when a caller's address is unknown)
    ip          INET,
    -- the /24 (IPv4) or /64 (IPv6) network of ip: households and campuses share one
    prefix      CIDR CHECK (prefix IS NULL OR masklen(prefix) IN (24, 64)),
    -- HMAC-SHA256 of the client's install id (X-Install-Id) under RISK_HASH_KEY
    device_hash BYTEA CHECK (device_hash IS NULL OR length(device_hash) = 32),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX idx_risk_obs_user ON risk_observations (user_id, created_at);
CREATE INDEX idx_risk_obs_prefix ON risk_observations (prefix, created_at) WHERE prefix IS NOT NULL;
CREATE INDEX idx_risk_obs_device ON risk_observations (device_hash, created_at) WHERE device_hash IS NOT NULL;
GRANT SELECT, INSERT ON risk_observations TO earnpay_app;
GRANT UPDATE (ip, prefix, device_hash) ON risk_observations TO earnpay_app;
GRANT USAGE ON SEQUENCE risk_observations_id_seq TO earnpay_app;

-- A keyed fingerprint of where a payout method sends money (HMAC of the normalised destination).
ALTER TABLE payout_methods ADD COLUMN destination_fingerprint BYTEA
    CHECK (destination_fingerprint IS NULL OR length(destination_fingerprint) = 32);
CREATE INDEX idx_payout_methods_fingerprint ON payout_methods (destination_fingerprint) WHERE destination_fingerprint IS NOT NULL;
GRANT UPDATE (destination_fingerprint) ON payout_methods TO earnpay_app;

-- --- rules as data ------------------------------------------------------------------------------
-- Each rule measures one count over a window; at or above its threshold it scores its weight.
-- address_only: the rule sees only shared addresses (households, campuses): such signals alone
-- never lead further than review. Admin staff change thresholds, windows and weights (audited);
-- each rule is in shadow mode until its feature flag `risk.<name>` is on for the account.
CREATE TABLE risk_rules (
    name           TEXT PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{1,40}$'),
    description    TEXT NOT NULL CHECK (length(description) BETWEEN 1 AND 500),
    threshold      INTEGER NOT NULL CHECK (threshold BETWEEN 1 AND 1000000),
    window_minutes INTEGER NOT NULL CHECK (window_minutes BETWEEN 1 AND 525600),
    weight         INTEGER NOT NULL CHECK (weight BETWEEN 0 AND 100),
    address_only   BOOLEAN NOT NULL DEFAULT false,
    updated_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by     UUID REFERENCES users (id)
);
GRANT SELECT ON risk_rules TO earnpay_app;
GRANT UPDATE (threshold, window_minutes, weight, updated_at, updated_by) ON risk_rules TO earnpay_app;

INSERT INTO risk_rules (name, description, threshold, window_minutes, weight, address_only) VALUES
    ('signup_velocity_prefix', 'sign-ups from the account''s sign-up network prefix within the window', 10, 1440, 20, true),
    ('signup_velocity_device', 'sign-ups from the account''s device within the window', 3, 1440, 40, false),
    ('signup_burst', 'sign-ups from the account''s sign-up network prefix within a few minutes of it', 5, 10, 30, true),
    ('completion_velocity', 'seconds of video completed within the window, in percent of the window (over 100: more than a person can watch)', 110, 60, 40, false),
    ('machine_timing', 'completions in the window whose spacing varies by under 5 % (a script''s clock, not a person)', 6, 1440, 30, false),
    ('linked_device', 'accounts seen on the account''s devices within the window', 3, 43200, 40, false),
    ('linked_prefix', 'accounts active from the account''s network prefixes within the window', 8, 1440, 20, true),
    ('linked_payout', 'accounts whose payout method sends to the same destination', 2, 525600, 60, false),
    ('referral_linked', 'referred accounts sharing a device or payout destination with their referrer', 2, 525600, 60, false),
    ('referral_same_prefix', 'referred accounts that signed up from the referrer''s network prefixes', 5, 43200, 20, true);

-- Rule rollout: every rule starts in shadow mode (its flag off: signals recorded, no effect).
INSERT INTO feature_flags (key, description, enabled, rollout_percent)
SELECT 'risk.' || name, 'enforce risk rule ' || name || ' (off: shadow mode, signals recorded without effect)', false, 0
  FROM risk_rules
ON CONFLICT (key) DO NOTHING;

-- --- signals: each rule's latest finding per account ------------------------------------------------
CREATE TABLE risk_signals (
    user_id       UUID NOT NULL REFERENCES users (id),
    rule          TEXT NOT NULL REFERENCES risk_rules (name),
    value         INTEGER NOT NULL CHECK (value >= 0),
    score         INTEGER NOT NULL CHECK (score >= 0),
    -- false: shadow mode (what the rule would have done; no effect on the account's state)
    enforced      BOOLEAN NOT NULL,
    details       JSONB NOT NULL DEFAULT '{}',
    first_seen_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, rule)
);
CREATE INDEX idx_risk_signals_rule ON risk_signals (rule, updated_at);
GRANT SELECT, INSERT, UPDATE, DELETE ON risk_signals TO earnpay_app;

-- --- state transitions: who or what moved an account, and why ------------------------------------
CREATE TABLE risk_transitions (
    id         BIGSERIAL PRIMARY KEY,
    user_id    UUID NOT NULL REFERENCES users (id),
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL CHECK (to_state IN ('ok', 'watch', 'review', 'suspended', 'banned')),
    actor_kind TEXT NOT NULL CHECK (actor_kind IN ('rules', 'staff')),
    -- the staff member (NULL for the rules)
    actor_id   UUID REFERENCES users (id),
    reason     TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 1000),
    score      INTEGER,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK ((actor_kind = 'staff') = (actor_id IS NOT NULL))
);
CREATE INDEX idx_risk_transitions_user ON risk_transitions (user_id, id);
GRANT SELECT, INSERT ON risk_transitions TO earnpay_app;
GRANT USAGE ON SEQUENCE risk_transitions_id_seq TO earnpay_app;

-- The scan's watermark: observations and completions after it are new (maintenance task risk_scan).
CREATE TABLE risk_scan_state (
    id                  BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    last_observation_id BIGINT NOT NULL DEFAULT 0,
    last_completion_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    scanned_at          TIMESTAMPTZ
);
INSERT INTO risk_scan_state DEFAULT VALUES;
GRANT SELECT, UPDATE ON risk_scan_state TO earnpay_app;

-- Two accounts are linked when they share a device (an install id's hash) or a payout destination.
-- A shared address alone does not link them (households, campuses). Referral rewards between
-- linked accounts never qualify (functions/earnings/bonuses.py TRY_QUALIFY).
CREATE FUNCTION ep_risk_linked(a UUID, b UUID) RETURNS BOOLEAN
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
               SELECT 1 FROM risk_observations x JOIN risk_observations y ON y.device_hash = x.device_hash
                WHERE x.user_id = a AND y.user_id = b AND x.device_hash IS NOT NULL)
        OR EXISTS (
               SELECT 1 FROM payout_methods x JOIN payout_methods y ON y.destination_fingerprint = x.destination_fingerprint
                WHERE x.user_id = a AND y.user_id = b AND x.destination_fingerprint IS NOT NULL)
$$;
