-- Back-office user search (GET /admin/users).
--
-- Prefix search on email compares bytes (the ~>=~ / ~<~ operators of text_pattern_ops), so it
-- selects exactly the emails starting with the prefix whatever the database's collation, and a
-- prepared statement can still use the index (LIKE 'x%' cannot with a parameter for a pattern).
CREATE INDEX idx_users_email_pattern ON users (email text_pattern_ops);
-- The plain listing, newest first (keyset on (created_at, id)).
CREATE INDEX idx_users_created ON users (created_at DESC, id DESC);
