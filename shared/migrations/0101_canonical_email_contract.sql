-- Canonical email (contract): once 0100 has backfilled every account, each one either holds its
-- canonical email (unique) or names the older account it duplicates. New accounts always hold
-- one (the trigger sets it; the unique index refuses a second account for one mailbox).
ALTER TABLE users ADD CONSTRAINT users_canonical_email_present
    CHECK (canonical_email IS NOT NULL OR canonical_duplicate_of IS NOT NULL);
