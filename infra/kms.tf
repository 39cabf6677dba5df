## Customer-managed encryption keys.
##
## One key ring per environment, one key per purpose so a key can be rotated, audited or
## disabled without touching the others:
##   cloudsql            CMEK of the primary and replicas (and their backups)
##   storage             CMEK of every bucket
##   pubsub              CMEK of every topic (message payloads at rest)
##   payout-details-kek  key-encryption key for the application's envelope encryption of
##                       payout details: the app generates a data key per record, encrypts
##                       the details locally, and stores the data key wrapped by this KEK.
##
## Rotation every 90 days creates a new primary version; old versions stay enabled so data
## wrapped under them still decrypts (docs/operations.md, "Key rotation").
## Key rings and keys cannot be deleted in GCP (only their versions), hence prevent_destroy:
## a destroy would only orphan the resource in state and lose the data encrypted under it.

resource "google_kms_key_ring" "this" {
  name     = local.prefix
  location = var.region

  lifecycle {
    prevent_destroy = true
  }
}

locals {
  kms_keys = {
    cloudsql             = "CMEK for the Cloud SQL primary, replicas and backups"
    storage              = "CMEK for the Cloud Storage buckets"
    pubsub               = "CMEK for Pub/Sub topics"
    "payout-details-kek" = "Key-encryption key wrapping the per-record data keys of payout details"
  }
}

resource "google_kms_crypto_key" "keys" {
  for_each = local.kms_keys

  name            = each.key
  key_ring        = google_kms_key_ring.this.id
  purpose         = "ENCRYPT_DECRYPT"
  rotation_period = "7776000s" ## 90 days

  version_template {
    algorithm        = "GOOGLE_SYMMETRIC_ENCRYPTION"
    protection_level = var.kms_protection_level
  }

  labels = { purpose = replace(each.key, "-", "_") }

  lifecycle {
    prevent_destroy = true
  }
}
