-- cache_versions_bump_catalogue: the current body (first made by 0070_cache_versions.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- Any statement that changes videos bumps the catalogue's cache version (trigger
-- videos_bump_catalogue_version, statement level: a bulk change bumps it once). SECURITY DEFINER:
-- the application role can read the versions, not set them.
CREATE OR REPLACE FUNCTION cache_versions_bump_catalogue() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    UPDATE cache_versions SET version = version + 1 WHERE name = 'catalogue';
    RETURN NULL;
END
$$;
