-- The earnings ledger: append-only entries, balances carried on a per-user row, a hash chain.
--
-- Money is a signed BIGINT count of micro-dollars (1 USD = 1,000,000): small enough for
-- fractional-cent video rewards, and 2^63 micros is 9.2 trillion dollars. Payouts move whole cents
-- (multiples of 10,000 micros).
--
-- The application role cannot write either table directly: every entry goes through
-- ledger_post(), a SECURITY DEFINER function that locks the user's balance row, deduplicates on the
-- idempotency key, refuses to overdraw, chains the hash and updates the balance in one step. So the
-- invariants (sum of entries = available balance, never negative, one entry per key) hold for any
-- caller, and nobody can slip an entry past the chain.

CREATE TABLE balances (
    user_id           UUID PRIMARY KEY REFERENCES users (id),
    available         BIGINT NOT NULL DEFAULT 0 CHECK (available >= 0),
    lifetime_earned   BIGINT NOT NULL DEFAULT 0 CHECK (lifetime_earned >= 0),
    lifetime_paid_out BIGINT NOT NULL DEFAULT 0 CHECK (lifetime_paid_out >= 0),
    entry_count       BIGINT NOT NULL DEFAULT 0 CHECK (entry_count >= 0),
    -- the hash of the newest entry (32 zero bytes before the first): the next entry chains to it
    last_entry_hash   BYTEA NOT NULL DEFAULT decode(repeat('00', 32), 'hex') CHECK (length(last_entry_hash) = 32),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

GRANT SELECT ON balances TO earnpay_app;

-- Every account gets its balance row with the account itself.
CREATE FUNCTION balances_open_for_user() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    INSERT INTO balances (user_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    RETURN NEW;
END
$$;
CREATE TRIGGER users_open_balance AFTER INSERT ON users
    FOR EACH ROW EXECUTE FUNCTION balances_open_for_user();

INSERT INTO balances (user_id) SELECT id FROM users ON CONFLICT DO NOTHING;

-- Hash partitioned by user: every per-user read prunes to one of 16 partitions, each partition's
-- indexes stay small enough to cache, and vacuum works partition by partition. A unique key on a
-- partitioned table must include the partition key, which suits us: idempotency keys and
-- sequence numbers are per user. (Range partitioning by time would make per-user history span every
-- partition and forbid a per-user unique key; see docs/ledger.md.)
CREATE TABLE earnings (
    id              BIGINT GENERATED ALWAYS AS IDENTITY,
    user_id         UUID NOT NULL REFERENCES users (id),
    seq             BIGINT NOT NULL CHECK (seq > 0),
    type            TEXT NOT NULL CHECK (type IN (
                        'video_reward', 'login_bonus', 'streak_bonus', 'referral_bonus', 'referral_commission',
                        'adjustment', 'payout_hold', 'payout_release')),
    amount          BIGINT NOT NULL CHECK (amount <> 0),
    balance_after   BIGINT NOT NULL CHECK (balance_after >= 0),
    idempotency_key TEXT NOT NULL CHECK (length(idempotency_key) BETWEEN 1 AND 200),
    source          TEXT NOT NULL CHECK (length(source) BETWEEN 1 AND 100),
    reference       TEXT CHECK (length(reference) <= 200),
    metadata        JSONB,
    prev_hash       BYTEA NOT NULL CHECK (length(prev_hash) = 32),
    hash            BYTEA NOT NULL CHECK (length(hash) = 32),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    -- holds take money out, everything else but adjustments puts it in
    CHECK (CASE type WHEN 'payout_hold' THEN amount < 0 WHEN 'adjustment' THEN true ELSE amount > 0 END),
    PRIMARY KEY (user_id, id),
    UNIQUE (user_id, idempotency_key)
) PARTITION BY HASH (user_id);

-- History pages and exports read only this index (index-only scans): newest first by seq.
CREATE UNIQUE INDEX idx_earnings_user_seq ON earnings (user_id, seq DESC)
    INCLUDE (type, amount, balance_after, created_at, source, reference);
-- The product document's per-user date index, covering the same columns for date-range filters.
CREATE INDEX idx_earnings_user_date ON earnings (user_id, created_at DESC)
    INCLUDE (seq, type, amount);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE earnings_p%s PARTITION OF earnings FOR VALUES WITH (MODULUS 16, REMAINDER %s)', lpad(i::text, 2, '0'), i);
    END LOOP;
END
$$;

-- The database refuses UPDATE, DELETE and TRUNCATE for everyone, owner included (the app role has
-- no such privilege to begin with). Row triggers on the parent reach every partition; TRUNCATE
-- triggers are per table, so each partition gets its own.
CREATE FUNCTION earnings_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the earnings ledger is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'EP010', HINT = 'post a compensating entry instead';
END
$$;
CREATE TRIGGER earnings_append_only BEFORE UPDATE OR DELETE ON earnings
    FOR EACH ROW EXECUTE FUNCTION earnings_refuse_change();
CREATE TRIGGER earnings_no_truncate BEFORE TRUNCATE ON earnings
    FOR EACH STATEMENT EXECUTE FUNCTION earnings_refuse_change();
DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TRIGGER earnings_no_truncate BEFORE TRUNCATE ON earnings_p%s FOR EACH STATEMENT EXECUTE FUNCTION earnings_refuse_change()',
            lpad(i::text, 2, '0'));
    END LOOP;
END
$$;

GRANT SELECT ON earnings TO earnpay_app;

-- The chained hash of one entry. Timestamps enter as integer microseconds, so the text hashed does
-- not depend on the session's time zone or date style.
CREATE FUNCTION ledger_entry_hash(
    p_prev BYTEA, p_user_id UUID, p_seq BIGINT, p_type TEXT, p_amount BIGINT, p_balance_after BIGINT,
    p_key TEXT, p_created_at TIMESTAMPTZ
) RETURNS BYTEA
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT sha256(p_prev || convert_to(concat_ws('|',
        p_user_id::text, p_seq::text, p_type, p_amount::text, p_balance_after::text, p_key,
        floor(extract(epoch FROM p_created_at) * 1000000)::bigint::text), 'UTF8'))
$$;

-- Which entry types count as money earned (lifetime_earned); adjustments count with their sign.
CREATE FUNCTION ledger_is_earning(p_type TEXT) RETURNS BOOLEAN
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p_type IN ('video_reward', 'login_bonus', 'streak_bonus', 'referral_bonus', 'referral_commission', 'adjustment')
$$;

-- Posts one entry exactly once. Errors (SQLSTATE): EP001 insufficient funds, EP002 unknown user,
-- EP003 the key was used for a different entry. A repeat of the same key returns the first entry
-- with duplicate = true and changes nothing.
CREATE FUNCTION ledger_post(
    p_user_id UUID, p_type TEXT, p_amount BIGINT, p_key TEXT, p_source TEXT,
    p_reference TEXT DEFAULT NULL, p_metadata JSONB DEFAULT NULL
) RETURNS TABLE (entry_id BIGINT, entry_seq BIGINT, entry_balance_after BIGINT, entry_created_at TIMESTAMPTZ, duplicate BOOLEAN)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    b balances%ROWTYPE;
    e RECORD;
    v_seq BIGINT;
    v_after BIGINT;
    v_at TIMESTAMPTZ;
    v_hash BYTEA;
    v_id BIGINT;
BEGIN
    SELECT * INTO b FROM balances WHERE user_id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'no balance for user %', p_user_id USING ERRCODE = 'EP002';
    END IF;

    SELECT x.id, x.seq, x.balance_after, x.created_at, x.type, x.amount INTO e
      FROM earnings x WHERE x.user_id = p_user_id AND x.idempotency_key = p_key;
    IF FOUND THEN
        IF e.type <> p_type OR e.amount <> p_amount THEN
            RAISE EXCEPTION 'idempotency key % was used for a different entry', p_key USING ERRCODE = 'EP003';
        END IF;
        RETURN QUERY SELECT e.id, e.seq, e.balance_after, e.created_at, true;
        RETURN;
    END IF;

    v_after := b.available + p_amount;
    IF v_after < 0 THEN
        RAISE EXCEPTION 'insufficient funds: available %, requested %', b.available, -p_amount USING ERRCODE = 'EP001';
    END IF;
    v_seq := b.entry_count + 1;
    v_at := clock_timestamp();
    v_hash := ledger_entry_hash(b.last_entry_hash, p_user_id, v_seq, p_type, p_amount, v_after, p_key, v_at);

    INSERT INTO earnings (user_id, seq, type, amount, balance_after, idempotency_key, source, reference, metadata,
                          prev_hash, hash, created_at)
    VALUES (p_user_id, v_seq, p_type, p_amount, v_after, p_key, p_source, p_reference, p_metadata,
            b.last_entry_hash, v_hash, v_at)
    RETURNING id INTO v_id;

    UPDATE balances
       SET available = v_after,
           lifetime_earned = lifetime_earned + CASE WHEN ledger_is_earning(p_type) THEN p_amount ELSE 0 END,
           entry_count = v_seq,
           last_entry_hash = v_hash,
           updated_at = v_at
     WHERE user_id = p_user_id;

    RETURN QUERY SELECT v_id, v_seq, v_after, v_at, false;
END
$$;

-- A payout that left our hands for good: money held earlier is now paid out (no ledger entry: the
-- hold already took it from the available balance).
CREATE FUNCTION ledger_record_paid_out(p_user_id UUID, p_amount BIGINT) RETURNS VOID
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF p_amount <= 0 THEN
        RAISE EXCEPTION 'paid-out amount must be positive' USING ERRCODE = 'EP004';
    END IF;
    UPDATE balances SET lifetime_paid_out = lifetime_paid_out + p_amount, updated_at = clock_timestamp()
     WHERE user_id = p_user_id;
END
$$;

REVOKE ALL ON FUNCTION ledger_post(UUID, TEXT, BIGINT, TEXT, TEXT, TEXT, JSONB) FROM PUBLIC;
REVOKE ALL ON FUNCTION ledger_record_paid_out(UUID, BIGINT) FROM PUBLIC;
REVOKE ALL ON FUNCTION balances_open_for_user() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ledger_post(UUID, TEXT, BIGINT, TEXT, TEXT, TEXT, JSONB) TO earnpay_app;
GRANT EXECUTE ON FUNCTION ledger_record_paid_out(UUID, BIGINT) TO earnpay_app;
