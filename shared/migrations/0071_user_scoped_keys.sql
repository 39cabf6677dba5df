-- Keys that include user_id on the per-user tables whose primary key is a bare id, so the schema
-- can later be distributed by user_id (Citus: a unique key or a foreign key between distributed
-- tables must include the distribution column; docs/capacity.md, "Past one primary").
--
-- The cheap half of that work, done now while the tables are small: a composite unique key that
-- child rows can reference as (id, user_id), as payout_methods already has. Moving the children
-- (payout_events, kyc_reviews) onto those keys needs a user_id column on each: listed, not done.
CREATE UNIQUE INDEX idx_payout_requests_id_user ON payout_requests (id, user_id);
CREATE UNIQUE INDEX idx_kyc_documents_id_user ON kyc_documents (id, user_id);
CREATE UNIQUE INDEX idx_data_exports_id_user ON data_exports (id, user_id);
