-- ep_users_canonical_email: the current body (first made by 0100_trust_safety.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- Trigger trg_users_canonical_email: every writer of users.email gets the canonical form for free
-- and cannot forget it; a changed email clears canonical_duplicate_of.
CREATE OR REPLACE FUNCTION ep_users_canonical_email() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.email IS DISTINCT FROM OLD.email THEN
        NEW.canonical_email := ep_canonical_email(NEW.email);
        NEW.canonical_duplicate_of := NULL;
    END IF;
    RETURN NEW;
END $$;
