-- users_bump_profile_version: the current body (first made by 0070_cache_versions.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- A user's profile version (trigger users_bump_profile_version): bumped by every UPDATE that changes
-- the row (name, role, status, KYC, anything), so per-instance profile caches see the change at once.
CREATE OR REPLACE FUNCTION users_bump_profile_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.profile_version := OLD.profile_version + 1;
    RETURN NEW;
END
$$;
