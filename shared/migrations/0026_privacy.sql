-- Privacy: users' data exports, and the narrow privileges an erasure needs (docs/privacy.md).

-- One row per export a user asked for. The bundle itself lives in the private exports bucket under
-- a random object name (nothing in it names the user); the bucket's lifecycle rule deletes objects
-- after 7 days, which is also when a ready export stops offering a download.
CREATE TABLE data_exports (
    id           UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id      UUID NOT NULL REFERENCES users (id),
    status       TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'ready', 'failed', 'deleted')),
    bucket       TEXT CHECK (length(bucket) BETWEEN 3 AND 222),
    object_name  TEXT CHECK (object_name ~ '^exports/[0-9a-f]{32}\.json$'),
    size_bytes   BIGINT CHECK (size_bytes >= 0),
    attempts     INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error   TEXT CHECK (length(last_error) <= 200),
    requested_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    ready_at     TIMESTAMPTZ,
    expires_at   TIMESTAMPTZ,
    deleted_at   TIMESTAMPTZ,
    CHECK (status <> 'ready' OR (bucket IS NOT NULL AND object_name IS NOT NULL AND ready_at IS NOT NULL AND expires_at IS NOT NULL)),
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL))
);
-- The owner's exports, newest first.
CREATE INDEX idx_data_exports_user ON data_exports (user_id, requested_at DESC);
-- At most one export waiting per user: asking again while one is queued returns that one.
CREATE UNIQUE INDEX idx_data_exports_one_queued ON data_exports (user_id) WHERE status = 'queued';
-- What `python main.py process-exports` (and a lost Pub/Sub message's retry) picks up.
CREATE INDEX idx_data_exports_queued ON data_exports (requested_at) WHERE status = 'queued';

GRANT SELECT, INSERT ON data_exports TO earnpay_app;
GRANT UPDATE (status, bucket, object_name, size_bytes, attempts, last_error, ready_at, expires_at, deleted_at)
    ON data_exports TO earnpay_app;

-- Erasure scrubs personal data in place; these are the only extra privileges it needs. Column
-- grants, so the app still cannot rewrite who a session or a login attempt belonged to.
GRANT UPDATE (ip, user_agent) ON sessions TO earnpay_app;
GRANT UPDATE (email, ip) ON login_attempts TO earnpay_app;
-- Payout methods keep their row (payout history references it) but lose the encrypted details and
-- the masked label; requests lose their snapshot of the label.
GRANT UPDATE (label, details, erased_at, is_default) ON payout_methods TO earnpay_app;
GRANT UPDATE (method_label) ON payout_requests TO earnpay_app;
