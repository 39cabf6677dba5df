-- Referrals that have to be real (docs/ledger.md, "Referrals").
--
-- A referral bonus used to pay on the referred account's first completed video, available at once:
-- twenty throwaway accounts behind one code earned their referrer $20 in seconds. Now the referral
-- exists from the referred user's first completion as 'pending': its bonus and commissions are
-- posted into the referrer's pending bucket awaiting 'referral:<referred user id>'. It qualifies
-- when the referred account has shown activity of its own (video rewards of at least a configured
-- amount on at least a configured number of distinct UTC days, and verified KYC), within a
-- per-referrer daily limit of newly qualifying referrals; then its rewards clear after the referral
-- clearing period. A referral still pending at expires_at expires and its pending rewards are
-- reversed.

CREATE TABLE referrals (
    referred_user_id UUID PRIMARY KEY REFERENCES users (id),
    referrer_id      UUID NOT NULL REFERENCES users (id),
    status           TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'qualified', 'expired')),
    -- the end of the qualification window (the referred account's sign-up + the window)
    expires_at       TIMESTAMPTZ NOT NULL,
    qualified_at     TIMESTAMPTZ,
    expired_at       TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (referrer_id <> referred_user_id),
    CHECK ((status = 'qualified') = (qualified_at IS NOT NULL)),
    CHECK ((status = 'expired') = (expired_at IS NOT NULL))
);
-- A referrer's referrals (support, stats).
CREATE INDEX idx_referrals_referrer ON referrals (referrer_id, created_at DESC);
-- What the expiry sweep reads: only pending referrals, soonest to expire first.
CREATE INDEX idx_referrals_expiring ON referrals (expires_at) WHERE status = 'pending';

GRANT SELECT, INSERT ON referrals TO earnpay_app;
GRANT UPDATE (status, qualified_at, expired_at) ON referrals TO earnpay_app;

-- Newly qualifying referrals per referrer and UTC day: the row is the per-referrer lock that keeps
-- many qualifying events at once within the limit (an upsert that only increments below it).
CREATE TABLE referral_daily_qualifications (
    referrer_id UUID NOT NULL REFERENCES users (id),
    day         DATE NOT NULL,
    qualified   INTEGER NOT NULL CHECK (qualified >= 0),
    PRIMARY KEY (referrer_id, day)
);

GRANT SELECT, INSERT, UPDATE (qualified) ON referral_daily_qualifications TO earnpay_app;

-- Referrals whose bonus the previous rules already paid (available at once) stay qualified, so their
-- commissions keep clearing like any qualified referral's.
INSERT INTO referrals (referred_user_id, referrer_id, status, expires_at, qualified_at, created_at)
SELECT referred_user_id, referrer_id, 'qualified', qualified_at, qualified_at, qualified_at
  FROM referral_qualifications
ON CONFLICT DO NOTHING;
