-- earnings_refuse_change: the current body (first made by 0010_ledger.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- The database refuses UPDATE, DELETE and TRUNCATE for everyone, owner included (the app role has
-- no such privilege to begin with). Row triggers on the parent reach every partition; TRUNCATE
-- triggers are per table, so each partition gets its own.
CREATE OR REPLACE FUNCTION earnings_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the earnings ledger is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'EP010', HINT = 'post a compensating entry instead';
END
$$;
