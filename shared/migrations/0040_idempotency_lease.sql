-- Idempotency keys recover after a crash (issue 16).
--
-- A claim used to be a committed row that only the process which made it could complete or release:
-- a process killed in between left the key answering 409 request_in_progress until the session purge
-- deleted it days later. Now a claim is a lease: ``locked_until`` says how long the attempt that holds
-- it may be presumed alive, and ``attempt`` names that attempt. A retry after the lease takes the key
-- over (a new attempt) and runs the request again, which is safe because every domain write behind an
-- Idempotency-Key is itself idempotent (payout ids and ledger keys are derived from the key): the
-- re-run finds the committed effect and answers with it. Completing or releasing is conditional on
-- ``attempt``, so a slow first attempt cannot release its successor's claim.
--
-- Expand only: both columns are nullable, and rows the previous release claims (locked_until NULL)
-- count as expired, so a deploy in progress never strands a key.
ALTER TABLE idempotency_keys
    ADD COLUMN locked_until TIMESTAMPTZ,
    ADD COLUMN attempt UUID;

-- A completed key holds its answer; an open claim holds none (what the replay path relies on).
ALTER TABLE idempotency_keys
    ADD CONSTRAINT idempotency_keys_completed_has_response CHECK ((status IS NULL) = (response IS NULL)) NOT VALID;
