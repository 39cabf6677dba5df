-- refuse_new_bank_accounts: the current body (first made by 0090_no_new_bank_accounts.sql).
-- shared/migrate.py applies this file after the migrations whenever it changed: change the
-- function here, never in a new migration.
-- No new bank accounts (issue 15). EarnPay pays through PayPal only, and PayPal Payouts cannot pay a
-- bank account: every payout to one was held, failed by the provider and released. So new
-- bank-account methods, and new payout requests to one, are refused here (the invariant) as well as
-- by the API (the clear 4xx). Rows made before stay as they are and stay readable: listing, payout
-- history, exports and erasure still see them; nothing is deleted or rewritten.
-- EP090: a bank account was offered after they were withdrawn.
CREATE OR REPLACE FUNCTION refuse_new_bank_accounts() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'bank accounts are not accepted: EarnPay pays through PayPal only' USING ERRCODE = 'EP090';
END
$$;
