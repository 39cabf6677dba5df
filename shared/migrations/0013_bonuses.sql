-- Bonuses: their configuration, login streaks and referral qualification.
--
-- Every bonus is a ledger entry with a deterministic idempotency key (login_bonus:<user>:<date>,
-- streak_bonus:<user>:<date>, referral_bonus:<referred user>, referral_commission:<reward entry>),
-- so it is credited at most once however often a login or a completion is retried. The tables
-- here only keep the state that decides whether and how much to credit, in one row per user, so
-- deciding never scans a user's history.

-- The one row of bonus configuration, read inside the same statement that decides a bonus (no
-- cache to go stale, no extra round trip). Staff may edit it (the admin area grants itself UPDATE
-- when it builds the screen); amounts are micro-dollars, 0 turns a bonus off.
CREATE TABLE bonus_config (
    id                      BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
    -- credited on the first login of each UTC day
    login_bonus_micros      BIGINT NOT NULL CHECK (login_bonus_micros BETWEEN 0 AND 10000000),
    -- element n (1-based) is the streak bonus on the n-th consecutive UTC day of logging in; the
    -- last element applies to every longer streak (the cap)
    streak_bonus_micros     BIGINT[] NOT NULL CHECK (
                                array_ndims(streak_bonus_micros) = 1
                                AND array_lower(streak_bonus_micros, 1) = 1
                                AND cardinality(streak_bonus_micros) BETWEEN 1 AND 366
                                AND array_position(streak_bonus_micros, NULL) IS NULL
                                AND 0 <= ALL (streak_bonus_micros)
                                AND 10000000 >= ALL (streak_bonus_micros)),
    -- credited to the referrer once, when the referred user completes a first video
    referral_bonus_micros   BIGINT NOT NULL CHECK (referral_bonus_micros BETWEEN 0 AND 100000000),
    -- lifetime commission to the referrer on the referred user's video rewards (never on bonuses),
    -- in basis points (1/100 of a percent), rounded down to the micro-dollar
    referral_commission_bps INTEGER NOT NULL CHECK (referral_commission_bps BETWEEN 0 AND 10000),
    updated_at              TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- The defaults: 1 cent a day for logging in; from the 2nd consecutive day a streak bonus of 0.5,
-- 1, 1.5, 2, 2.5 cents, and 5 cents a day from the 7th day on; $1 per qualified referral; 5 %
-- commission.
INSERT INTO bonus_config (login_bonus_micros, streak_bonus_micros, referral_bonus_micros, referral_commission_bps)
VALUES (10000, ARRAY[0, 5000, 10000, 15000, 20000, 25000, 50000]::BIGINT[], 1000000, 500);

GRANT SELECT ON bonus_config TO earnpay_app;

-- One row per user who ever logged in: the streak state the daily bonus needs (an upsert decides
-- "first login today?" and the new streak length in one statement, no history scan).
CREATE TABLE login_streaks (
    user_id             UUID PRIMARY KEY REFERENCES users (id),
    last_login_date     DATE NOT NULL,
    streak_days         INTEGER NOT NULL CHECK (streak_days >= 1),
    longest_streak_days INTEGER NOT NULL CHECK (longest_streak_days >= streak_days),
    updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT ON login_streaks TO earnpay_app;
GRANT UPDATE (last_login_date, streak_days, longest_streak_days, updated_at) ON login_streaks TO earnpay_app;

-- A referred user qualifies once (first completed video): this row is the "once", and the record
-- behind the referrer's bonus. Commission is keyed by the reward entry in the ledger instead.
CREATE TABLE referral_qualifications (
    referred_user_id UUID PRIMARY KEY REFERENCES users (id),
    referrer_id      UUID NOT NULL REFERENCES users (id),
    video_id         TEXT NOT NULL CHECK (length(video_id) BETWEEN 1 AND 100),
    reward_entry_id  BIGINT NOT NULL,
    qualified_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- (reward_entry_id is checked to be the referred user's video reward by the statement that
    -- inserts the row; no foreign key to earnings, which must stay free to refuse TRUNCATE itself)
    CHECK (referrer_id <> referred_user_id)
);
CREATE INDEX idx_referral_qualifications_referrer ON referral_qualifications (referrer_id, qualified_at DESC);

GRANT SELECT, INSERT ON referral_qualifications TO earnpay_app;
