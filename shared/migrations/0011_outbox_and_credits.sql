-- The transactional outbox and the record of credit requests applied from Pub/Sub.
--
-- Outbox: a domain event is a row written in the same transaction as the change it describes, so
-- it exists if and only if the change committed. After commit a per-process background publisher
-- sends it to the Pub/Sub topic domain-events; the maintenance task outbox_sweep publishes
-- whatever that missed (instance stopped, Pub/Sub down). Publishing is at-least-once: consumers
-- deduplicate on the event's key, which is unique here.
CREATE TABLE outbox (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_type   TEXT NOT NULL CHECK (event_type ~ '^[a-z][a-z0-9_]{0,62}$'),
    -- the dedup key consumers rely on, e.g. 'earnings_credited:123'; one event per key, ever
    key          TEXT NOT NULL CHECK (length(key) BETWEEN 1 AND 200),
    payload      JSONB NOT NULL CHECK (jsonb_typeof(payload) = 'object'),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    published_at TIMESTAMPTZ,
    -- publish attempts so far and the last failure, for the operator (and the sweep's report)
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   TEXT CHECK (length(last_error) <= 2000),
    message_id   TEXT CHECK (length(message_id) <= 200),
    CHECK (published_at IS NULL OR published_at >= created_at)
);
CREATE UNIQUE INDEX idx_outbox_key ON outbox (key);
-- What the sweep reads: only unpublished rows, oldest first. Partial, so it stays tiny however
-- many published rows wait for pruning.
CREATE INDEX idx_outbox_pending ON outbox (created_at, id) WHERE published_at IS NULL;
-- Pruning published rows by age.
CREATE INDEX idx_outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL;

-- The app inserts events, marks them published and prunes old published ones; it never rewrites
-- an event's type, key or payload.
GRANT SELECT, INSERT, DELETE ON outbox TO earnpay_app;
GRANT UPDATE (published_at, attempts, last_error, message_id) ON outbox TO earnpay_app;

-- One row per credit request applied from the topic earnings-credit-requests, keyed by the
-- publisher's own id. Together with the ledger idempotency key 'credit:<source>:<request_id>'
-- it makes redelivery a no-op, and the stored hash lets a request id re-sent with a different
-- user, type or amount be recognised as a conflicting duplicate (dead-lettered, never applied).
CREATE TABLE credit_requests (
    -- source and request id are bounded so 'credit:' || source || ':' || request_id fits the
    -- ledger's 200-character idempotency key; request ids never contain ':' (unambiguous key)
    source       TEXT NOT NULL CHECK (source ~ '^[a-z0-9][a-z0-9_.:-]{0,63}$'),
    request_id   TEXT NOT NULL CHECK (length(request_id) BETWEEN 1 AND 128 AND position(':' IN request_id) = 0),
    user_id      UUID NOT NULL REFERENCES users (id),
    type         TEXT NOT NULL CHECK (type IN ('video_reward', 'referral_bonus', 'adjustment')),
    amount       BIGINT NOT NULL CHECK (amount > 0),
    -- SHA-256 of the request's money-relevant fields (source, request_id, user, type, amount, reference)
    request_hash BYTEA NOT NULL CHECK (length(request_hash) = 32),
    entry_id     BIGINT NOT NULL,
    message_id   TEXT CHECK (length(message_id) <= 200),
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- No foreign key to earnings: one would make TRUNCATE earnings fail with a foreign-key error
    -- before the ledger's own append-only trigger speaks. entry_id is what ledger_post returned in
    -- the same transaction.
    PRIMARY KEY (source, request_id)
);
CREATE INDEX idx_credit_requests_user ON credit_requests (user_id, created_at DESC);

GRANT SELECT, INSERT ON credit_requests TO earnpay_app;
