## Build and deploy identities, and the private Cloud Build pool.
##
## deployer   The Cloud Build trigger runs as this SA. It deploys function code (gcloud
##            functions deploy), moves traffic (Cloud Run), plans Terraform, and runs the
##            migrations: it is the one non-function IAM database user (docs/deploy.md).
##            It does NOT apply Terraform; infrastructure changes are applied by an operator.
## fn-build   Builds function containers from source (Cloud Functions' build step).
## The private pool is peered with the VPC so the migration step reaches the database's
## private IP (the default Cloud Build pool cannot).

resource "google_service_account" "deployer" {
  account_id   = "earnpay-deployer"
  display_name = "EarnPay ${var.env} CI deployer and migrator"
  description  = "Cloud Build identity: deploys functions, moves traffic, runs migrations, plans Terraform."
}

locals {
  deployer_project_roles = [
    "roles/cloudfunctions.developer",  ## deploy new function revisions
    "roles/run.developer",             ## tag revisions and move traffic
    "roles/cloudbuild.workerPoolUser", ## run builds on the private pool
    "roles/cloudsql.client",           ## migrations through the connector
    "roles/cloudsql.instanceUser",     ## IAM database login for migrations
    "roles/logging.logWriter",         ## build logs
    ## Read-only roles for `terraform plan` (refresh reads every managed resource). A
    ## list of narrow viewers instead of the basic roles/viewer.
    "roles/iam.securityReviewer",     ## IAM policies on every resource
    "roles/iam.serviceAccountViewer", ## service accounts
    "roles/cloudsql.viewer",
    "roles/pubsub.viewer",
    "roles/storage.bucketViewer",
    "roles/cloudkms.viewer",
    "roles/secretmanager.viewer",
    "roles/monitoring.viewer",
    "roles/logging.viewer",
    "roles/cloudscheduler.viewer",
    "roles/compute.networkViewer",
    "roles/vpcaccess.viewer",
    "roles/eventarc.viewer",
    "roles/cloudbuild.workerPoolViewer",
  ]
}

resource "google_project_iam_member" "deployer" {
  for_each = toset(local.deployer_project_roles)

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.deployer.email}"
}

## A function deploy must "act as" the function's runtime SA and the build SA; granted on
## those SAs only, never project-wide.
resource "google_service_account_iam_member" "deployer_acts_as_fn" {
  for_each = google_service_account.fn

  service_account_id = each.value.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_service_account_iam_member" "deployer_acts_as_build" {
  service_account_id = google_service_account.function_build.name
  role               = "roles/iam.serviceAccountUser"
  member             = "serviceAccount:${google_service_account.deployer.email}"
}

resource "google_storage_bucket_iam_member" "deployer_sources" {
  bucket = google_storage_bucket.this["function-sources"].name
  role   = "roles/storage.objectAdmin"
  member = "serviceAccount:${google_service_account.deployer.email}"
}

## ---------------------------------------------------------------- function build SA
resource "google_service_account" "function_build" {
  account_id   = "earnpay-fn-build"
  display_name = "EarnPay ${var.env} function builder"
  description  = "Builds Cloud Functions containers from the uploaded source."
}

resource "google_project_iam_member" "function_build" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.function_build.email}"
}

resource "google_storage_bucket_iam_member" "function_build_sources" {
  bucket = google_storage_bucket.this["function-sources"].name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:${google_service_account.function_build.email}"
}

## ---------------------------------------------------------------- private worker pool
resource "google_cloudbuild_worker_pool" "this" {
  #checkov:skip=CKV_GCP_86:Builds download Terraform providers and Python wheels from public registries; the pool is peered only to reach the database's private IP and accepts no inbound traffic.
  name     = local.prefix
  location = var.region

  worker_config {
    machine_type   = "e2-standard-2"
    disk_size_gb   = 100
    no_external_ip = false ## terraform init and pip need the registries
  }

  network_config {
    peered_network = var.network_id
  }

  depends_on = [google_service_networking_connection.private_service_access]
}
