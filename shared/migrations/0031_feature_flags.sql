-- Feature flags for gradual rollouts, changed by admin staff (the admin route audits each change).
--
-- A flag is on for a user when it is enabled and the user's bucket (a stable hash of flag key and
-- user id, 0..99, computed in functions/flags) is below rollout_percent. So raising the percentage
-- only ever adds users, and every function instance agrees without talking to the others.
-- Flags are switched off, never deleted: code may still ask for them, and the history stays in
-- the admin audit log.
CREATE TABLE feature_flags (
    key             TEXT PRIMARY KEY CHECK (key ~ '^[a-z][a-z0-9_.-]{1,63}$'),
    description     TEXT NOT NULL DEFAULT '' CHECK (length(description) <= 500),
    enabled         BOOLEAN NOT NULL DEFAULT false,
    rollout_percent SMALLINT NOT NULL DEFAULT 0 CHECK (rollout_percent BETWEEN 0 AND 100),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- the staff member who made the last change (NULL: created by a migration or the CLI)
    updated_by      UUID REFERENCES users (id)
);

-- Every instance reads the whole (small) table into its cache; the admin function writes it.
GRANT SELECT, INSERT, UPDATE (description, enabled, rollout_percent, updated_at, updated_by) ON feature_flags TO earnpay_app;
