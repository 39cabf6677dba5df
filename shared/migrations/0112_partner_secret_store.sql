-- Offerwall signing secrets in Google Secret Manager (production) or encrypted here (local, tests):
-- shared/secrets.py, docs/partners.md "Where the secrets live". A Secret Manager version's row holds
-- only the version's resource name, never the secret; a database version's row holds the encrypted
-- envelope as before. Exactly one of the two, as the row's store says. Rows from before this
-- migration are database versions (the default).
--
-- Expand only: a nullable column, a column with a constant default, a CHECK every existing row meets.

ALTER TABLE partner_secrets ALTER COLUMN envelope DROP NOT NULL;
ALTER TABLE partner_secrets
    ADD COLUMN store TEXT NOT NULL DEFAULT 'database' CHECK (store IN ('database', 'secret_manager')),
    -- projects/<project>/secrets/<prefix><partner id>/versions/<n>
    ADD COLUMN secret_version TEXT CHECK (secret_version ~ '^projects/[^/]{1,100}/secrets/[A-Za-z0-9_-]{1,255}/versions/[0-9]{1,12}$'),
    ADD CONSTRAINT partner_secrets_one_store CHECK (
        (store = 'database') = (envelope IS NOT NULL) AND (store = 'secret_manager') = (secret_version IS NOT NULL));
