-- ledger_is_earning: the current body (first made by 0010_ledger.sql, last changed by 0110_ledger_recovery.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- Which entry types count as money earned (lifetime_earned): the credit types of
-- functions/ledger/service.py CREDIT_TYPES (tests/shared/test_sql_functions.py holds them equal).
-- Adjustments count with their sign; a partner reward is earned money like a video reward.
CREATE OR REPLACE FUNCTION ledger_is_earning(p_type TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_type IN ('video_reward', 'login_bonus', 'streak_bonus', 'referral_bonus', 'referral_commission', 'adjustment',
                      'partner_reward')
$$;
