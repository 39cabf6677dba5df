## Identities and least-privilege grants.
##
## Each function runs as its own service account, granted only what its entry in
## local.functions says it touches. Grants are made on the resource (topic, bucket, key,
## secret, service) wherever GCP allows it; only the Cloud SQL roles are project-level
## (Cloud SQL has no instance-level IAM).

## ---------------------------------------------------------------- function identities
resource "google_service_account" "fn" {
  for_each = local.function_config

  ## SA ids are 6-30 chars: "fn-" + the function name shortened where needed.
  account_id   = substr("fn-${each.value.name}", 0, 30)
  display_name = "EarnPay ${var.env} function ${each.key}"
  description  = "Runtime identity of the ${each.key} Cloud Function; also its IAM database user."
}

locals {
  ## Every function talks to the database as its own IAM user, writes its metrics
  ## (shared/metrics.py, OpenTelemetry to Cloud Monitoring) and its sampled traces
  ## (shared/tracing.py, OpenTelemetry to Cloud Trace).
  function_project_roles = {
    for pair in flatten([
      for fn, f in local.function_config : [
        for role in concat(
          ["roles/cloudsql.client", "roles/cloudsql.instanceUser", "roles/monitoring.metricWriter", "roles/cloudtrace.agent"],
          lookup(local.function_extra_project_roles, fn, []),
        ) : { key = "${fn}/${role}", fn = fn, role = role }
      ]
    ]) : pair.key => pair
  }

  ## run_maintenance's restore_drill task clones the primary to a point in time, checks the
  ## clone and deletes it (functions/maintenance/clone_drill.py): a custom role with just
  ## those instance permissions. The code refuses to delete an instance whose name lacks
  ## "-drill-", so the delete permission cannot take the primary down by mistake.
  function_extra_project_roles = {
    run_maintenance = [google_project_iam_custom_role.restore_drill.id]
  }

  function_topic_publishers = {
    for pair in flatten([
      for fn, f in local.function_config : [
        for t in f.publishes : { key = "${fn}/${t}", fn = fn, topic = t }
      ]
    ]) : pair.key => pair
  }

  function_bucket_roles = {
    for pair in flatten([
      for fn, f in local.function_config : [
        for b, role in f.buckets : { key = "${fn}/${b}", fn = fn, bucket = b, role = role }
      ]
    ]) : pair.key => pair
  }

  function_secrets = {
    for pair in flatten([
      for fn, f in local.function_config : [
        for s in f.secrets : { key = "${fn}/${s}", fn = fn, secret = s }
      ]
    ]) : pair.key => pair
  }

  kms_roles = {
    encrypt = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
    decrypt = "roles/cloudkms.cryptoKeyDecrypter"
  }
}

resource "google_project_iam_custom_role" "restore_drill" {
  role_id     = "earnpay_${var.env}_restore_drill"
  title       = "EarnPay restore drill (${var.env})"
  description = "Clone the database to a point in time, inspect the clone, delete it."
  permissions = [
    "cloudsql.instances.clone",
    "cloudsql.instances.create",
    "cloudsql.instances.get",
    "cloudsql.instances.list",
    "cloudsql.instances.update",
    "cloudsql.instances.delete",
    "cloudsql.backupRuns.get",
    "cloudsql.backupRuns.list",
  ]
}

resource "google_project_iam_member" "fn" {
  for_each = local.function_project_roles

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.fn[each.value.fn].email}"
}

resource "google_pubsub_topic_iam_member" "fn_publisher" {
  for_each = local.function_topic_publishers

  topic  = google_pubsub_topic.this[each.value.topic].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.fn[each.value.fn].email}"
}

resource "google_storage_bucket_iam_member" "fn" {
  for_each = local.function_bucket_roles

  bucket = google_storage_bucket.this[each.value.bucket].name
  role   = each.value.role
  member = "serviceAccount:${google_service_account.fn[each.value.fn].email}"
}

## A consumer publishes messages it cannot ever process to its topic's dead-letter topic.
resource "google_pubsub_topic_iam_member" "fn_dead_letter_publisher" {
  for_each = local.push_subscriptions

  topic  = google_pubsub_topic.dead_letter[each.key].name
  role   = "roles/pubsub.publisher"
  member = "serviceAccount:${google_service_account.fn[each.value.consumer].email}"
}

## Envelope encryption of payout details: encrypt+decrypt for the functions that store
## them (payouts, admin, privacy), decrypt-only for those that only read them.
resource "google_kms_crypto_key_iam_member" "fn_payout_kek" {
  for_each = { for fn, f in local.function_config : fn => f if f.kms != null }

  crypto_key_id = google_kms_crypto_key.keys["payout-details-kek"].id
  role          = local.kms_roles[each.value.kms]
  member        = "serviceAccount:${google_service_account.fn[each.key].email}"
}

resource "google_secret_manager_secret_iam_member" "fn" {
  for_each = local.function_secrets

  secret_id = google_secret_manager_secret.this[each.value.secret].id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.fn[each.value.fn].email}"
}

## V4 signed URLs without a key file: the function signs through the IAM signBlob API as
## itself, which needs token-creator on its own service account (and nothing wider).
resource "google_service_account_iam_member" "fn_self_signer" {
  for_each = { for fn, f in local.function_config : fn => f if f.signs_urls }

  service_account_id = google_service_account.fn[each.key].name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${google_service_account.fn[each.key].email}"
}

## ---------------------------------------------------------------- event delivery
## Signs the OIDC tokens of Pub/Sub pushes and Eventarc deliveries; run.invoker on the
## event functions only (functions.tf).
resource "google_service_account" "event_invoker" {
  account_id   = "event-invoker"
  display_name = "EarnPay ${var.env} event invoker"
  description  = "Identity of Pub/Sub push subscriptions and the Eventarc KYC trigger when they call event functions."
}

## Eventarc requires its trigger identity to hold eventReceiver on the project.
resource "google_project_iam_member" "event_invoker_receiver" {
  project = var.project_id
  role    = "roles/eventarc.eventReceiver"
  member  = "serviceAccount:${google_service_account.event_invoker.email}"
}

## ---------------------------------------------------------------- Google service agents
resource "google_project_service_identity" "cloudsql" {
  provider = google-beta
  project  = var.project_id
  service  = "sqladmin.googleapis.com"
}

resource "google_project_service_identity" "pubsub" {
  provider = google-beta
  project  = var.project_id
  service  = "pubsub.googleapis.com"
}

data "google_storage_project_service_account" "gcs" {
  project = var.project_id
}

resource "google_kms_crypto_key_iam_member" "cloudsql_cmek" {
  crypto_key_id = google_kms_crypto_key.keys["cloudsql"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = google_project_service_identity.cloudsql.member
}

resource "google_kms_crypto_key_iam_member" "storage_cmek" {
  crypto_key_id = google_kms_crypto_key.keys["storage"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = data.google_storage_project_service_account.gcs.member
}

resource "google_kms_crypto_key_iam_member" "pubsub_cmek" {
  crypto_key_id = google_kms_crypto_key.keys["pubsub"].id
  role          = "roles/cloudkms.cryptoKeyEncrypterDecrypter"
  member        = google_project_service_identity.pubsub.member
}

## Eventarc's Cloud Storage triggers publish through Pub/Sub as the GCS service agent,
## which needs publisher on the project (the topic is created by Eventarc).
resource "google_project_iam_member" "gcs_agent_pubsub_publisher" {
  project = var.project_id
  role    = "roles/pubsub.publisher"
  member  = data.google_storage_project_service_account.gcs.member
}

## Dead-lettering is done by the Pub/Sub service agent: it must publish to each dead-letter
## topic and subscribe to (ack forwarded messages on) each source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_publisher" {
  for_each = local.push_subscriptions

  topic  = google_pubsub_topic.dead_letter[each.key].name
  role   = "roles/pubsub.publisher"
  member = google_project_service_identity.pubsub.member
}

resource "google_pubsub_subscription_iam_member" "dead_letter_subscriber" {
  for_each = local.push_subscriptions

  subscription = google_pubsub_subscription.push[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = google_project_service_identity.pubsub.member
}

## Pub/Sub mints the push OIDC tokens as the event-invoker SA.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.event_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = google_project_service_identity.pubsub.member
}
