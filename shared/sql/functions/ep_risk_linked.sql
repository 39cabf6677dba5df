-- ep_risk_linked: the current body (first made by 0100_trust_safety.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- Two accounts are linked when they share a device (an install id's hash) or a payout destination.
-- A shared address alone does not link them (households, campuses). Referral rewards between
-- linked accounts never qualify (functions/earnings/bonuses.py TRY_QUALIFY).
CREATE OR REPLACE FUNCTION ep_risk_linked(a UUID, b UUID) RETURNS BOOLEAN
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT EXISTS (
               SELECT 1 FROM risk_observations x JOIN risk_observations y ON y.device_hash = x.device_hash
                WHERE x.user_id = a AND y.user_id = b AND x.device_hash IS NOT NULL)
        OR EXISTS (
               SELECT 1 FROM payout_methods x JOIN payout_methods y ON y.destination_fingerprint = x.destination_fingerprint
                WHERE x.user_id = a AND y.user_id = b AND x.destination_fingerprint IS NOT NULL)
$$;
