-- Payouts: where a user's money goes (payout methods), what they asked for (payout requests), and
-- every state change of a request (payout events).
--
-- Money moves only through the ledger (0010): a request holds its amount with a 'payout_hold' entry
-- in the same transaction that inserts it; cancel, reject and a provider failure release it with a
-- 'payout_release' entry; a paid payout only adds to balances.lifetime_paid_out. Amounts here are
-- whole cents of USD (the ledger's micro-dollars / 10,000).
--
-- The state machine lives in the database: payout_transitions lists every legal (from, to) pair and a
-- trigger refuses any other UPDATE of status, whoever runs it. Every insert and status change writes
-- a payout_events row from a SECURITY DEFINER trigger, so the history cannot be skipped or forged by
-- the application role (which can only read it), and nobody can change or delete it.

-- Payout methods. Details (PayPal email, IBAN or US account/routing numbers, holder name) are an
-- envelope-encrypted JSON document (shared/crypto.py: a data key per record wrapped by Cloud KMS or
-- the local key) bound to the owner by its associated data "payout_method:<user_id>". The masked
-- label is stored in the clear so listing methods never decrypts anything.
CREATE TABLE payout_methods (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id     UUID NOT NULL REFERENCES users (id),
    type        TEXT NOT NULL CHECK (type IN ('paypal', 'bank_account')),
    label       TEXT NOT NULL CHECK (length(label) BETWEEN 1 AND 100),
    -- the envelope; NULL only once the details were erased (privacy erasure keeps the row for history)
    details     JSONB CHECK (details IS NULL OR jsonb_typeof(details) = 'object'),
    is_default  BOOLEAN NOT NULL DEFAULT false,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    erased_at   TIMESTAMPTZ,
    CHECK ((details IS NULL) = (erased_at IS NOT NULL)),
    CHECK (NOT (is_default AND erased_at IS NOT NULL)),
    -- lets payout_requests reference (method, owner) so a request can only use its owner's method
    UNIQUE (id, user_id)
);
CREATE INDEX idx_payout_methods_user ON payout_methods (user_id, created_at);
-- at most one default method per user
CREATE UNIQUE INDEX idx_payout_methods_one_default ON payout_methods (user_id) WHERE is_default;

GRANT SELECT, INSERT, UPDATE (is_default) ON payout_methods TO earnpay_app;

-- The legal state changes. 'submitted' -> 'submitted' is a re-claim by a batch worker (a retry after a
-- transient provider error, a pending payout re-checked, or a crashed worker's expired lease).
CREATE TABLE payout_transitions (
    from_state TEXT NOT NULL,
    to_state   TEXT NOT NULL,
    PRIMARY KEY (from_state, to_state)
);
INSERT INTO payout_transitions (from_state, to_state) VALUES
    ('requested', 'approved'),   -- finance staff
    ('requested', 'rejected'),   -- finance staff (the hold is released)
    ('requested', 'cancelled'),  -- the user, while the request still awaits approval (the hold is released)
    ('approved', 'submitted'),   -- a batch worker claimed it and hands it to the provider
    ('submitted', 'submitted'),  -- re-claimed for a retry or a status check (same payout id at the provider)
    ('submitted', 'paid'),       -- the provider paid it (counted in lifetime_paid_out)
    ('submitted', 'failed');     -- the provider refused it for good (the hold is released)

GRANT SELECT ON payout_transitions TO earnpay_app;

-- The product document names the table and its indexes payout_requests / idx_payout_*.
CREATE TABLE payout_requests (
    -- uuid5 of (user, Idempotency-Key) when the client sent one, so a retried request finds its row
    -- (which also makes (user_id, idempotency_key) unique without another index to maintain)
    id                 UUID PRIMARY KEY,
    user_id            UUID NOT NULL REFERENCES users (id),
    method_id          UUID NOT NULL,
    -- a snapshot of the method at request time: history stays readable whatever happens to the method
    method_type        TEXT NOT NULL CHECK (method_type IN ('paypal', 'bank_account')),
    method_label       TEXT NOT NULL CHECK (length(method_label) BETWEEN 1 AND 100),
    -- whole cents; the cap matches the ledger's largest single entry ($1,000,000)
    amount_cents       BIGINT NOT NULL CHECK (amount_cents > 0 AND amount_cents <= 100000000),
    -- the ledger is kept in US dollars
    currency           TEXT NOT NULL DEFAULT 'USD' CHECK (currency = 'USD'),
    status             TEXT NOT NULL DEFAULT 'requested'
                       CHECK (status IN ('requested', 'approved', 'rejected', 'submitted', 'paid', 'failed', 'cancelled')),
    idempotency_key    TEXT CHECK (length(idempotency_key) BETWEEN 1 AND 128),
    requested_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    decided_at         TIMESTAMPTZ,
    decided_by         UUID REFERENCES users (id),
    reject_reason      TEXT CHECK (length(reject_reason) BETWEEN 1 AND 500),
    cancelled_at       TIMESTAMPTZ,
    -- batch work: the first submission, the latest claim (worker and time), when it is next due
    submitted_at       TIMESTAMPTZ,
    claimed_at         TIMESTAMPTZ,
    claimed_by         TEXT CHECK (length(claimed_by) <= 200),
    next_check_at      TIMESTAMPTZ,
    attempts           INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    provider           TEXT CHECK (length(provider) <= 50),
    provider_reference TEXT CHECK (length(provider_reference) <= 200),
    provider_status    TEXT CHECK (provider_status IN ('paid', 'pending', 'failed')),
    failure_code       TEXT CHECK (length(failure_code) <= 100),
    failure_message    TEXT CHECK (length(failure_message) <= 1000),
    last_error         TEXT CHECK (length(last_error) <= 1000),
    completed_at       TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- who made the latest change and why: the event trigger copies them into payout_events
    last_actor         TEXT NOT NULL CHECK (length(last_actor) BETWEEN 1 AND 100),
    last_reason        TEXT CHECK (length(last_reason) <= 500),
    FOREIGN KEY (method_id, user_id) REFERENCES payout_methods (id, user_id),
    CHECK (status <> 'rejected' OR reject_reason IS NOT NULL),
    CHECK (status NOT IN ('approved', 'rejected') OR decided_at IS NOT NULL),
    CHECK (status <> 'submitted' OR (claimed_at IS NOT NULL AND next_check_at IS NOT NULL)),
    CHECK (status NOT IN ('paid', 'failed', 'cancelled', 'rejected') OR completed_at IS NOT NULL)
);
-- A user's history, newest first (keyset pages on (requested_at, id)).
CREATE INDEX idx_payout_user_id ON payout_requests (user_id, requested_at DESC, id DESC);
-- Review queues and the batch worker's claim of approved payouts, oldest first.
CREATE INDEX idx_payout_status ON payout_requests (status, requested_at, id);
-- Date-range reports.
CREATE INDEX idx_payout_requested_at ON payout_requests (requested_at);
-- Submitted payouts due for a retry, a status check or a lease expiry (small: only in-flight rows).
CREATE INDEX idx_payout_due ON payout_requests (next_check_at) WHERE status = 'submitted';

GRANT SELECT, INSERT, UPDATE (
    status, decided_at, decided_by, reject_reason, cancelled_at, submitted_at, claimed_at, claimed_by, next_check_at,
    attempts, provider, provider_reference, provider_status, failure_code, failure_message, last_error, completed_at,
    updated_at, last_actor, last_reason
) ON payout_requests TO earnpay_app;

-- Every transition, append-only like the ledger.
CREATE TABLE payout_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    payout_id  UUID NOT NULL REFERENCES payout_requests (id),
    from_state TEXT,  -- NULL for the request itself
    to_state   TEXT NOT NULL,
    actor      TEXT NOT NULL,  -- the user's or staff member's id, or 'system'
    reason     TEXT,
    attempt    INTEGER NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX idx_payout_events_payout ON payout_events (payout_id, id);

GRANT SELECT ON payout_events TO earnpay_app;

CREATE FUNCTION payout_events_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'payout_events is append-only: % is not allowed', TG_OP USING ERRCODE = 'EP021';
END
$$;
CREATE TRIGGER payout_events_append_only BEFORE UPDATE OR DELETE ON payout_events
    FOR EACH ROW EXECUTE FUNCTION payout_events_refuse_change();
CREATE TRIGGER payout_events_no_truncate BEFORE TRUNCATE ON payout_events
    FOR EACH STATEMENT EXECUTE FUNCTION payout_events_refuse_change();

-- The guard and the history writer are statement-level triggers over transition tables: a batch
-- worker changes 1,000 rows in one statement, and one set-based check and one INSERT ... SELECT cost
-- a fraction of 1,000 row-level trigger calls. Errors: EP020 illegal transition, EP022 immutable
-- column changed. SECURITY DEFINER: the app role cannot insert events itself.
CREATE FUNCTION payout_requests_after_insert() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM new_rows WHERE status <> 'requested') THEN
        RAISE EXCEPTION 'a payout request starts as requested' USING ERRCODE = 'EP020';
    END IF;
    INSERT INTO payout_events (payout_id, from_state, to_state, actor, reason, attempt)
    SELECT id, NULL, status, last_actor, last_reason, attempts FROM new_rows;
    RETURN NULL;
END
$$;

-- A status change must be listed in payout_transitions; a re-claim (attempts changes) counts as a
-- transition, a bookkeeping update (say, a pending provider answer) does not.
-- Transition tables have no statistics: without enable_nestloop = off the planner joins old and new
-- rows with a nested loop (1,000 x 1,000 comparisons, ~450 ms) instead of a hash join (~1 ms).
CREATE FUNCTION payout_requests_after_update() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET enable_nestloop = off AS $$
DECLARE
    bad RECORD;
BEGIN
    SELECT o.status AS from_state, n.status AS to_state INTO bad
      FROM old_rows o JOIN new_rows n ON n.id = o.id
     WHERE (n.status <> o.status OR n.attempts <> o.attempts)
       AND NOT EXISTS (SELECT 1 FROM payout_transitions t WHERE t.from_state = o.status AND t.to_state = n.status)
     LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal payout transition % -> %', bad.from_state, bad.to_state USING ERRCODE = 'EP020';
    END IF;
    INSERT INTO payout_events (payout_id, from_state, to_state, actor, reason, attempt)
    SELECT n.id, o.status, n.status, n.last_actor, n.last_reason, n.attempts
      FROM old_rows o JOIN new_rows n ON n.id = o.id
     WHERE n.status <> o.status OR n.attempts <> o.attempts;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION payout_requests_after_insert() FROM PUBLIC;
REVOKE ALL ON FUNCTION payout_requests_after_update() FROM PUBLIC;
CREATE TRIGGER payout_requests_after_insert AFTER INSERT ON payout_requests
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION payout_requests_after_insert();
CREATE TRIGGER payout_requests_after_update AFTER UPDATE ON payout_requests
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION payout_requests_after_update();

-- The owner, method and money of a request never change (the app role has no UPDATE on these
-- columns; this stops everyone else). UPDATE OF fires only when a statement names them: free otherwise.
CREATE FUNCTION payout_requests_refuse_rewrite() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.id <> OLD.id OR NEW.user_id <> OLD.user_id OR NEW.method_id <> OLD.method_id OR NEW.amount_cents <> OLD.amount_cents
       OR NEW.currency <> OLD.currency OR NEW.requested_at <> OLD.requested_at THEN
        RAISE EXCEPTION 'the owner, method and amount of a payout request never change' USING ERRCODE = 'EP022';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER payout_requests_refuse_rewrite BEFORE UPDATE OF id, user_id, method_id, amount_cents, currency, requested_at
    ON payout_requests FOR EACH ROW EXECUTE FUNCTION payout_requests_refuse_rewrite();
