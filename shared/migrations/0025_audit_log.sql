-- The audit log: one row per staff action (and per erasure), written in the same transaction as
-- the change it describes, so an action without its audit row cannot commit.
--
-- Append-only for everyone: the app role gets SELECT and INSERT only, and a trigger refuses
-- UPDATE, DELETE and TRUNCATE even for the owner (as the earnings ledger does in 0010).
--
-- Rows name people only by their pseudonymous UUIDs. before/after hold state that is not personal
-- data (roles, statuses, amounts, decisions): shared/audit.py redacts personal fields (email,
-- names, IPs, payout destinations) before inserting, because an erasure can never rewrite this
-- table (docs/privacy.md).
CREATE TABLE audit_log (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- who acted (NULL only for the system itself, e.g. a scheduled job)
    actor_id        UUID REFERENCES users (id),
    actor_role      TEXT NOT NULL CHECK (actor_role IN ('user', 'support', 'finance', 'compliance', 'admin', 'system')),
    action          TEXT NOT NULL CHECK (action ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' AND length(action) <= 64),
    target_type     TEXT NOT NULL CHECK (target_type ~ '^[a-z][a-z_]*$' AND length(target_type) <= 40),
    target_id       TEXT NOT NULL CHECK (length(target_id) BETWEEN 1 AND 200),
    -- the user the action is about (the owner of a payout, the subject of a KYC decision...): what
    -- a user's data export and GET /admin/audit?subject_user_id= look up
    subject_user_id UUID REFERENCES users (id),
    before          JSONB,
    after           JSONB,
    reason          TEXT CHECK (length(reason) BETWEEN 1 AND 500),
    request_id      TEXT CHECK (length(request_id) BETWEEN 1 AND 64),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    CHECK (actor_id IS NOT NULL OR actor_role = 'system')
);
-- GET /admin/audit pages newest first by id under each filter.
CREATE INDEX idx_audit_log_actor ON audit_log (actor_id, id DESC) WHERE actor_id IS NOT NULL;
CREATE INDEX idx_audit_log_subject ON audit_log (subject_user_id, id DESC) WHERE subject_user_id IS NOT NULL;
CREATE INDEX idx_audit_log_target ON audit_log (target_type, target_id, id DESC);
CREATE INDEX idx_audit_log_action ON audit_log (action, id DESC);

CREATE FUNCTION audit_log_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'EP025', HINT = 'record a new entry instead';
END
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_refuse_change();

GRANT SELECT, INSERT ON audit_log TO earnpay_app;
