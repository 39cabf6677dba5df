-- Analytics without personal data: views for analysts and dashboards, read on the replica.
--
-- Analysts connect as members of the NOLOGIN role earnpay_analytics, which may read these views
-- and nothing else (no base table). A view runs with its owner's privileges (the schema owner),
-- so it can read the tables the role cannot.
--
-- What the views leave out, by design: email, display name, password hash, referral code (a
-- code people post publicly, i.e. a handle that leads back to a person), IP addresses, user
-- agents, session and idempotency data, KYC documents and payout destinations. Times of single
-- users' events are cut to the day.
--
-- Users appear under a pseudonym: hex(sha256(salt || user id)). The salt is random per database
-- and readable only by the schema owner, so a pseudonym cannot be joined back to users, earnings
-- or logs (which carry the raw UUID) by anyone holding only analytics access, and the same user
-- keeps the same pseudonym across views and days. Erased users drop out of the per-user views.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'earnpay_analytics') THEN
        CREATE ROLE earnpay_analytics NOLOGIN;
    END IF;
END
$$;

-- Exactly one row; no grant to anyone (the views read it with the owner's rights).
-- gen_random_uuid() draws from the server's strong random source: 2 x 122 random bits.
CREATE TABLE analytics_salt (
    singleton BOOLEAN PRIMARY KEY DEFAULT true CHECK (singleton),
    salt      BYTEA NOT NULL CHECK (length(salt) = 32)
);
INSERT INTO analytics_salt (salt) VALUES (uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));

-- The views join the salt row in rather than call a helper function: functions in a view run with
-- the caller's EXECUTE rights, and a callable pseudonym(uuid) would let an analyst who knows one
-- raw id (from a log line, a support ticket) find that user's rows.

-- One row per account (staff included, flagged), with carried balances and activity by day.
CREATE VIEW analytics_users AS
SELECT encode(sha256(s.salt || uuid_send(u.id)), 'hex')            AS user_pseudonym,
       (u.created_at AT TIME ZONE 'UTC')::date                     AS signup_date,
       u.kyc_status,
       u.status,
       u.role <> 'user'                                            AS is_staff,
       CASE WHEN u.referred_by IS NOT NULL THEN encode(sha256(s.salt || uuid_send(u.referred_by)), 'hex') END
                                                                   AS referred_by_pseudonym,
       b.available                                                 AS available_micros,
       b.lifetime_earned                                           AS lifetime_earned_micros,
       b.lifetime_paid_out                                         AS lifetime_paid_out_micros,
       b.entry_count,
       CASE WHEN b.entry_count > 0 THEN (b.updated_at AT TIME ZONE 'UTC')::date END AS last_ledger_activity_date
  FROM users u
 CROSS JOIN analytics_salt s
  LEFT JOIN balances b ON b.user_id = u.id
 WHERE u.status <> 'erased';

-- Platform totals per UTC day and entry type (no user at all).
CREATE VIEW analytics_daily_earnings AS
SELECT (e.created_at AT TIME ZONE 'UTC')::date AS day,
       e.type,
       count(*)                                AS entries,
       count(DISTINCT e.user_id)               AS users,
       sum(e.amount)                           AS amount_micros
  FROM earnings e
 GROUP BY 1, 2;

-- Per pseudonymous user, day and type: cohorts, retention, earning curves.
CREATE VIEW analytics_user_daily_earnings AS
SELECT encode(sha256(s.salt || uuid_send(e.user_id)), 'hex') AS user_pseudonym,
       (e.created_at AT TIME ZONE 'UTC')::date AS day,
       e.type,
       count(*)                                AS entries,
       sum(e.amount)                           AS amount_micros
  FROM earnings e
  JOIN users u ON u.id = e.user_id
 CROSS JOIN analytics_salt s
 WHERE u.status <> 'erased'
 GROUP BY 1, 2, 3;

-- Completed videos per UTC day and video (0012): no user, no session, no position trail.
CREATE VIEW analytics_video_completions AS
SELECT (p.completed_at AT TIME ZONE 'UTC')::date AS day,
       p.video_id,
       count(*)                                  AS completions,
       count(DISTINCT p.user_id)                 AS users,
       sum(p.reward_micros)                      AS reward_micros,
       sum(p.withheld_micros)                    AS withheld_micros,
       sum(p.heartbeats)                         AS heartbeats
  FROM video_progress p
 WHERE p.completed_at IS NOT NULL
 GROUP BY 1, 2;

-- Payouts per UTC request day, state and method type (0021). Never the method's label (free text
-- a user wrote), its details, the provider's reference or messages, or who asked.
CREATE VIEW analytics_payouts AS
SELECT (r.requested_at AT TIME ZONE 'UTC')::date AS day,
       r.status,
       r.method_type,
       count(*)                                  AS payouts,
       sum(r.amount_cents)                       AS amount_cents,
       count(DISTINCT r.user_id)                 AS users,
       round(avg(extract(epoch FROM r.completed_at - r.requested_at)) FILTER (WHERE r.status = 'paid'))::bigint
                                                 AS avg_seconds_to_paid
  FROM payout_requests r
 GROUP BY 1, 2, 3;

REVOKE ALL ON analytics_salt FROM PUBLIC;
GRANT USAGE ON SCHEMA public TO earnpay_analytics;
GRANT SELECT ON analytics_users, analytics_daily_earnings, analytics_user_daily_earnings,
                analytics_video_completions, analytics_payouts TO earnpay_analytics;
