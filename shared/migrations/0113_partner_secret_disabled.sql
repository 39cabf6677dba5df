-- When the Secret Manager version of a retired offerwall secret was disabled (docs/partners.md,
-- "Where the secrets live"): the maintenance task partner_secrets_disable disables each version
-- once its overlap is over and records it here, so a leaked or forgotten old version can no longer
-- be read from Secret Manager by anyone. Database versions have nothing outside to disable (NULL).
--
-- Expand only: a nullable column.
ALTER TABLE partner_secrets ADD COLUMN disabled_at TIMESTAMPTZ;
