## Cloud Storage. Every bucket is private: uniform bucket-level access (no object ACLs),
## public access prevention enforced, CMEK, access logs. Users reach objects only through
## short-lived V4 signed URLs that the functions issue.
## Names are <project>-<env>-<purpose> (bucket names are global).

locals {
  buckets = {
    "kyc-documents" = {
      ## Versioned, with no Bucket Lock retention policy: a user's erasure request must be
      ## able to delete their documents (docs/privacy.md). Retention is by lifecycle instead:
      ## a live document is kept var.kyc_retention_days (AML record keeping, >= 5 years) and
      ## then deleted (data minimisation); a deleted or replaced one stays recoverable as a
      ## noncurrent version for 30 days (a window to undo a mistaken erasure), then is gone.
      versioning          = true
      retention_days      = null
      delete_after_days   = var.kyc_retention_days
      noncurrent_days     = 30
      cors                = true
      storage_class       = "STANDARD"
      soft_delete_seconds = 604800
    }
    "exports" = {
      ## Privacy exports are personal data: gone after var.export_retention_days.
      versioning          = true
      retention_days      = null
      delete_after_days   = var.export_retention_days
      noncurrent_days     = 1
      cors                = false
      storage_class       = "STANDARD"
      soft_delete_seconds = 0 ## no soft-delete copy of expired personal data
    }
    "console" = {
      ## The staff console's built files (infra/console.tf serves them through Cloud CDN); old
      ## versions stay 30 days so a bad release can be rolled back by restoring them.
      versioning          = true
      retention_days      = null
      delete_after_days   = null
      noncurrent_days     = 30
      cors                = false
      storage_class       = "STANDARD"
      soft_delete_seconds = 604800
    }
    "function-sources" = {
      versioning          = true
      retention_days      = null
      delete_after_days   = null
      noncurrent_days     = 30
      cors                = false
      storage_class       = "STANDARD"
      soft_delete_seconds = 604800
    }
  }

  bucket_names = { for k, _ in local.buckets : k => "${var.project_id}-${var.env}-${k}" }
}

resource "google_storage_bucket" "this" {
  for_each = local.buckets

  name                        = local.bucket_names[each.key]
  location                    = var.region
  storage_class               = each.value.storage_class
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = each.value.versioning
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.keys["storage"].id
  }

  logging {
    log_bucket        = google_storage_bucket.access_logs.name
    log_object_prefix = each.key
  }

  soft_delete_policy {
    retention_duration_seconds = each.value.soft_delete_seconds
  }

  dynamic "retention_policy" {
    for_each = each.value.retention_days == null ? [] : [each.value.retention_days]
    content {
      retention_period = retention_policy.value * 86400
      is_locked        = false
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.delete_after_days == null ? [] : [each.value.delete_after_days]
    content {
      condition {
        age = lifecycle_rule.value
      }
      action {
        type = "Delete"
      }
    }
  }

  dynamic "lifecycle_rule" {
    for_each = each.value.noncurrent_days == null ? [] : [each.value.noncurrent_days]
    content {
      condition {
        days_since_noncurrent_time = lifecycle_rule.value
        with_state                 = "ARCHIVED"
      }
      action {
        type = "Delete"
      }
    }
  }

  ## Browsers PUT documents straight to a signed URL; only our app's origins may.
  dynamic "cors" {
    for_each = each.value.cors ? [1] : []
    content {
      origin          = var.app_origins
      method          = ["PUT"]
      response_header = ["Content-Type", "x-goog-content-length-range"]
      max_age_seconds = 3600
    }
  }

  lifecycle {
    prevent_destroy = true
  }

  depends_on = [google_kms_crypto_key_iam_member.storage_cmek]
}

## Usage/access logs of the buckets above (who read which KYC document, and when).
resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the access-log sink itself; logging it into itself would recurse.
  name                        = "${var.project_id}-${var.env}-access-logs"
  location                    = var.region
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  encryption {
    default_kms_key_name = google_kms_crypto_key.keys["storage"].id
  }

  lifecycle_rule {
    condition {
      age = 400
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_kms_crypto_key_iam_member.storage_cmek]
}

## GCS writes usage logs as this group.
resource "google_storage_bucket_iam_member" "access_logs_writer" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}
