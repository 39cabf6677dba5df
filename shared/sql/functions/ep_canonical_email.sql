-- ep_canonical_email: the current body (first made by 0100_trust_safety.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- `a.b+x@gmail.com` and `ab@gmail.com` reach one mailbox. The canonical form is lower case, with
-- `+tags` removed for providers that deliver them to the base address and dots removed where the
-- provider ignores them (Gmail). Computed here, in one place, by trigger (ep_users_canonical_email).
CREATE OR REPLACE FUNCTION ep_canonical_email(email TEXT) RETURNS TEXT
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
