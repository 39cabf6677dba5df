-- Version numbers that let every function instance keep a cache and still see a change at once.
--
-- The product document caches user profiles for 10 minutes and video lists for 15. Per-instance
-- caches with only a TTL show stale data on every instance but the one that made the change, for
-- up to the TTL. Instead each cache entry remembers the version it was built from, and a request
-- compares that with the current version, which costs nothing extra for profiles (the session
-- check already reads the user's row) and one primary-key read for the catalogue. The versions are
-- bumped by triggers, so no code path that changes the data can forget to invalidate.

-- One row per shared cache.
CREATE TABLE cache_versions (
    name    TEXT PRIMARY KEY CHECK (name IN ('catalogue')),
    version BIGINT NOT NULL DEFAULT 1 CHECK (version >= 1)
);
INSERT INTO cache_versions (name) VALUES ('catalogue');
GRANT SELECT ON cache_versions TO earnpay_app;

-- Any statement that changes videos bumps the catalogue's version (statement level: a bulk change
-- bumps it once). SECURITY DEFINER: the application role can read the versions, not set them.
CREATE FUNCTION cache_versions_bump_catalogue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE cache_versions SET version = version + 1 WHERE name = 'catalogue';
    RETURN NULL;
END
$$;
CREATE TRIGGER videos_bump_catalogue_version
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON videos
    FOR EACH STATEMENT EXECUTE FUNCTION cache_versions_bump_catalogue();

-- A user's profile version: bumped by every UPDATE that changes the row (name, role, status, KYC,
-- anything). A constant default makes ADD COLUMN instant (no table rewrite).
ALTER TABLE users ADD COLUMN profile_version BIGINT NOT NULL DEFAULT 1 CHECK (profile_version >= 1);

CREATE FUNCTION users_bump_profile_version() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.profile_version := OLD.profile_version + 1;
    RETURN NEW;
END
$$;
CREATE TRIGGER users_bump_profile_version
    BEFORE UPDATE ON users
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION users_bump_profile_version();
