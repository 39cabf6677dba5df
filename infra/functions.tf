## Every Cloud Function (2nd gen) of EarnPay, described once in local.functions.
##
## The map key is the Python entry point in main.py (exactly: the test in tests/infra checks
## both directions). The deployed function name is the key with "_" turned into "-", because
## 2nd-gen function ids (and their Cloud Run services) only allow [a-z0-9-]. HTTP functions
## keep their public names (auth, videos, ...), which are the first path segment of the API.
##
## Triggers:
##   http    public HTTPS endpoint; callers authenticate with bearer sessions in the app.
##   pubsub  NO Eventarc trigger: Terraform owns a push subscription per topic (pubsub.tf)
##           with retry backoff and a dead-letter topic, pushing to the function's URL with
##           an OIDC token of the event-invoker service account. The function is still a
##           CloudEvent function: functions-framework turns the Pub/Sub push envelope into a
##           CloudEvent (data.message.data base64, data.message.messageId).
##   gcs     Eventarc trigger on object finalize in the KYC bucket (no subscription of ours
##           exists for it; Eventarc retries with RETRY_POLICY_RETRY for up to 24 h).
##
## Sizing: max_instances x db_pool_size is the worst-case number of connections a function
## can hold. The sum over functions plus database.connection_reserve must stay within 80 %
## of max_connections (checked below, in Terraform, and in tests/infra).
## The numbers here are production's; staging lowers them with var.function_scaling.
##
## Fields: kms = "encrypt" (cryptoKeyEncrypterDecrypter on payout-details-kek), "decrypt"
## (cryptoKeyDecrypter) or null; buckets = bucket key => storage role; publishes = topics it
## may publish to; signs_urls = needs to sign V4 URLs as itself (token creator on own SA).

locals {
  functions = {
    auth = {
      description   = "Sign-up, login, logout, current user, password change."
      trigger       = "http"
      topic         = null
      memory        = "512Mi" ## argon2id verifies take 19 MiB each, up to 8 at once
      timeout       = 60
      min_instances = 1
      max_instances = 10
      concurrency   = 8
      db_pool_size  = 3
      uses_replica  = false
      publishes     = ["domain-events", "notifications"]
      buckets       = {}
      kms           = null
      signs_urls    = false
      secrets       = ["risk-hash-key"]
    }
    videos = {
      description   = "Video catalogue."
      trigger       = "http"
      topic         = null
      memory        = "256Mi"
      timeout       = 30
      min_instances = 0
      max_instances = 5
      concurrency   = 8
      db_pool_size  = 2
      uses_replica  = false
      publishes     = []
      buckets       = {}
      kms           = null
      signs_urls    = false
      secrets       = []
    }
    progress = {
      description   = "Watch heartbeats and progress; completed views request credits."
      trigger       = "http"
      topic         = null
      memory        = "256Mi"
      timeout       = 30
      min_instances = 1
      max_instances = 10
      concurrency   = 8
      db_pool_size  = 3
      uses_replica  = false
      publishes     = ["earnings-credit-requests", "domain-events"]
      buckets       = {}
      kms           = null
      signs_urls    = false
      secrets       = []
    }
    earnings = {
      description   = "Earnings history, stats and full export (reads from the replica)."
      trigger       = "http"
      topic         = null
      memory        = "512Mi"
      timeout       = 120
      min_instances = 0
      max_instances = 5
      concurrency   = 8
      db_pool_size  = 2
      uses_replica  = true
      publishes     = []
      buckets       = {}
      kms           = null
      signs_urls    = false
      secrets       = []
    }
    payouts = {
      description   = "Payout methods (encrypted details) and payout requests."
      trigger       = "http"
      topic         = null
      memory        = "256Mi"
      timeout       = 60
      min_instances = 0
      max_instances = 5
      concurrency   = 8
      db_pool_size  = 2
      uses_replica  = false
      publishes     = ["domain-events"]
      buckets       = {}
      kms           = "encrypt"
      signs_urls    = false
      secrets       = ["risk-hash-key"]
    }
    kyc = {
      description   = "KYC status and signed upload URLs for documents."
      trigger       = "http"
      topic         = null
      memory        = "256Mi"
      timeout       = 60
      min_instances = 0
      max_instances = 3
      concurrency   = 8
      db_pool_size  = 2
      uses_replica  = false
      publishes     = ["domain-events"]
      buckets       = { "kyc-documents" = "roles/storage.objectCreator" }
      kms           = null
      signs_urls    = true
      secrets       = []
    }
    privacy = {
      description   = "Data export requests, export download URLs, erasure."
      trigger       = "http"
      topic         = null
      memory        = "256Mi"
      timeout       = 60
      min_instances = 0
      max_instances = 3
      concurrency   = 8
      db_pool_size  = 2
      uses_replica  = false
      publishes     = ["privacy-exports", "domain-events"]
      buckets       = { exports = "roles/storage.objectUser", "kyc-documents" = "roles/storage.objectUser" } ## serves exports; erasure deletes exports and KYC documents
      kms           = "encrypt"
      signs_urls    = true
      secrets       = []
    }
    admin = {
      description   = "Staff back office: users, roles, payout approval, KYC decisions, audit."
      trigger       = "http"
      topic         = null
      memory        = "512Mi"
      timeout       = 120
      min_instances = 0
      max_instances = 2
      concurrency   = 8
      db_pool_size  = 2
      uses_replica  = true
      publishes     = ["earnings-credit-requests", "domain-events", "notifications"]
      buckets       = { "kyc-documents" = "roles/storage.objectViewer" }
      kms           = "encrypt"
      signs_urls    = true
      secrets       = []
    }
    partner_callbacks = {
      description   = "Signed server-to-server reward callbacks from rewarded-video networks and offerwalls."
      trigger       = "http"
      topic         = null
      memory        = "256Mi"
      timeout       = 15 ## partners retry; answer fast or let them
      min_instances = 0
      max_instances = 5
      concurrency   = 8
      db_pool_size  = 2
      uses_replica  = false
      publishes     = ["domain-events"]
      buckets       = {}
      kms           = null ## offerwall signing secrets are in Secret Manager (partners.tf), not under the KEK
      signs_urls    = false
      secrets       = []
    }
    health = {
      description   = "Liveness/readiness for uptime checks (primary and replica reachability)."
      trigger       = "http"
      topic         = null
      memory        = "256Mi"
      timeout       = 10
      min_instances = 0
      max_instances = 2
      concurrency   = 8
      db_pool_size  = 1
      uses_replica  = true
      publishes     = []
      buckets       = {}
      kms           = null
      signs_urls    = false
      secrets       = []
    }
    credit_earnings = {
      description   = "Applies credit requests to the ledger exactly once."
      trigger       = "pubsub"
      topic         = "earnings-credit-requests"
      memory        = "256Mi"
      timeout       = 60
      min_instances = 0
      max_instances = 10
      concurrency   = 2
      db_pool_size  = 2
      uses_replica  = false
      publishes     = ["domain-events"]
      buckets       = {}
      kms           = null
      signs_urls    = false
      secrets       = []
    }
    process_payouts = {
      description   = "Pays approved payouts in batches (Cloud Scheduler every 15 min)."
      trigger       = "pubsub"
      topic         = "payout-batches"
      memory        = "512Mi"
      timeout       = 540
      min_instances = 0
      max_instances = 1 ## one batch runner at a time; row locks guard double payment anyway
      concurrency   = 1
      db_pool_size  = 2
      uses_replica  = false
      publishes     = ["domain-events", "notifications"]
      buckets       = {}
      kms           = "decrypt" ## reads payout details to pay them, never writes them
      signs_urls    = false
      secrets       = ["payout-provider-api-key"]
    }
    run_maintenance = {
      description   = "ANALYZE, REINDEX, session purge, reconciliation, outbox sweep, restore drill."
      trigger       = "pubsub"
      topic         = "maintenance-tasks"
      memory        = "512Mi"
      timeout       = 540
      min_instances = 0
      max_instances = 1
      concurrency   = 2 ## the minutely outbox sweep must not wait behind a long REINDEX
      db_pool_size  = 2
      uses_replica  = false
      ## The outbox sweeper relays any pending outbox row, whatever its topic.
      publishes  = ["earnings-credit-requests", "payout-batches", "privacy-exports", "domain-events", "notifications"]
      buckets    = {}
      kms        = null
      signs_urls = false
      secrets    = []
    }
    kyc_document_uploaded = {
      description   = "Records an uploaded KYC document and moves KYC to review."
      trigger       = "gcs"
      topic         = null
      memory        = "256Mi"
      timeout       = 60
      min_instances = 0
      max_instances = 3
      concurrency   = 1
      db_pool_size  = 1
      uses_replica  = false
      publishes     = ["domain-events"]
      buckets       = { "kyc-documents" = "roles/storage.objectUser" } ## reads and checks uploads; deletes a rejected one
      kms           = null
      signs_urls    = false
      secrets       = []
    }
    send_notifications = {
      description   = "Emails user notifications (verification, reset, payouts, KYC, security) at most once each."
      trigger       = "pubsub"
      topic         = "notifications"
      memory        = "256Mi"
      timeout       = 30
      min_instances = 0
      max_instances = 2
      concurrency   = 1 ## holds the notification's row lock while the SMTP relay answers
      db_pool_size  = 2 ## the row lock's connection, and one that commits the link's token first
      uses_replica  = false
      publishes     = []
      buckets       = {}
      kms           = null
      signs_urls    = false
      secrets       = ["smtp-password"]
    }
    export_user_data = {
      description   = "Writes a user's data export to the exports bucket."
      trigger       = "pubsub"
      topic         = "privacy-exports"
      memory        = "512Mi"
      timeout       = 540
      min_instances = 0
      max_instances = 2
      concurrency   = 1
      db_pool_size  = 1
      uses_replica  = false
      publishes     = ["domain-events"]
      buckets       = { exports = "roles/storage.objectCreator" }
      kms           = "decrypt" ## the export includes the user's own payout methods
      signs_urls    = false
      secrets       = []
    }
  }

  ## Defaults merged with the per-environment overrides.
  function_config = {
    for k, f in local.functions : k => merge(f, {
      name          = replace(k, "_", "-")
      min_instances = coalesce(try(var.function_scaling[k].min_instances, null), f.min_instances)
      max_instances = coalesce(try(var.function_scaling[k].max_instances, null), f.max_instances)
      db_pool_size  = coalesce(try(var.function_scaling[k].db_pool_size, null), f.db_pool_size)
    })
  }

  http_functions  = { for k, f in local.function_config : k => f if f.trigger == "http" }
  event_functions = { for k, f in local.function_config : k => f if f.trigger != "http" }

  ## Replica used for read-heavy endpoints: the first replica key in sorted order.
  primary_replica_key = sort(keys(var.read_replicas))[0]

  ## Environment common to every function. Names are the contract with shared/config.
  common_env = {
    EARNPAY_ENV                 = var.env
    GCP_PROJECT                 = var.project_id
    DB_INSTANCE_CONNECTION_NAME = google_sql_database_instance.primary.connection_name
    DB_NAME                     = google_sql_database.earnpay.name
    DB_IP_TYPE                  = "PRIVATE"
    KYC_BUCKET                  = google_storage_bucket.this["kyc-documents"].name
    EXPORTS_BUCKET              = google_storage_bucket.this["exports"].name
    PUBSUB_ENABLED              = "true"
    SLOW_QUERY_MS               = "500"
    LOG_EXECUTION_ID            = "true"
    ## Metrics go to Cloud Monitoring at the end of a request, at most once a minute per instance
    ## (shared/metrics.py: no background thread in a function).
    METRICS_EXPORTER          = "gcp"
    METRICS_EXPORT_INTERVAL_S = "60"
    TRUSTED_PROXY_HOPS        = tostring(var.trusted_proxy_hops)
  }

  function_env = {
    for k, f in local.function_config : k => merge(
      local.common_env,
      {
        DB_IAM_USER  = trimsuffix(google_service_account.fn[k].email, ".gserviceaccount.com")
        DB_POOL_SIZE = tostring(f.db_pool_size)
      },
      f.uses_replica ? { DB_REPLICA_CONNECTION_NAME = google_sql_database_instance.replica[local.primary_replica_key].connection_name } : {},
      f.kms != null ? { PAYOUT_DETAILS_KEK = google_kms_crypto_key.keys["payout-details-kek"].id } : {},
      ## offerwall signing secrets: admin writes them, partner_callbacks reads them, run_maintenance
      ## disables retired versions (partners.tf)
      contains(["admin", "partner_callbacks", "run_maintenance"], k) ? local.partner_secret_env : {},
      ## the staff console (console.tf) calls these two from its own origin
      contains(["admin", "auth"], k) ? { CONSOLE_ORIGINS = local.console_origin } : {},
      ## The mailer alone talks SMTP (TLS, login from the smtp-password secret); every link in an
      ## email is built from PUBLIC_BASE_URL.
      k == "send_notifications" ? {
        SMTP_HOST       = var.mail.smtp_host
        SMTP_PORT       = tostring(var.mail.smtp_port)
        SMTP_TLS        = var.mail.smtp_tls
        SMTP_USERNAME   = var.mail.smtp_username
        MAIL_FROM       = var.mail.from
        PUBLIC_BASE_URL = var.mail.public_base_url
      } : {},
    )
  }
}

resource "google_cloudfunctions2_function" "fn" {
  for_each = local.function_config

  name        = each.value.name
  location    = var.region
  description = each.value.description

  build_config {
    runtime         = var.python_runtime
    entry_point     = each.key
    service_account = google_service_account.function_build.id

    source {
      storage_source {
        bucket = google_storage_bucket.this["function-sources"].name
        object = var.source_object
      }
    }
  }

  service_config {
    available_memory                 = each.value.memory
    available_cpu                    = "1"
    timeout_seconds                  = each.value.timeout
    min_instance_count               = each.value.min_instances
    max_instance_count               = each.value.max_instances
    max_instance_request_concurrency = each.value.concurrency
    service_account_email            = google_service_account.fn[each.key].email

    ## HTTP functions are the public API. Event functions accept only internal traffic:
    ## Pub/Sub push and Eventarc deliveries from this project count as internal.
    ingress_settings = each.value.trigger == "http" ? "ALLOW_ALL" : "ALLOW_INTERNAL_ONLY"

    ## Cloud Build deploys code as a new revision without traffic, smoke-tests it through
    ## a tag, then moves traffic (cloudbuild.yaml). Terraform must not fight that.
    all_traffic_on_latest_revision = true

    ## Only RFC 1918 traffic (the database's private IP) goes through the connector;
    ## Google APIs are reached directly.
    vpc_connector                 = google_vpc_access_connector.this.id
    vpc_connector_egress_settings = "PRIVATE_RANGES_ONLY"

    environment_variables = local.function_env[each.key]

    dynamic "secret_environment_variables" {
      for_each = toset(each.value.secrets)
      content {
        key        = local.secrets[secret_environment_variables.value].env
        project_id = var.project_id
        secret     = google_secret_manager_secret.this[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  dynamic "event_trigger" {
    for_each = each.value.trigger == "gcs" ? [1] : []
    content {
      trigger_region        = var.region
      event_type            = "google.cloud.storage.object.v1.finalized"
      retry_policy          = "RETRY_POLICY_RETRY"
      service_account_email = google_service_account.event_invoker.email

      event_filters {
        attribute = "bucket"
        value     = google_storage_bucket.this["kyc-documents"].name
      }
    }
  }

  lifecycle {
    ## Code is deployed by Cloud Build (gcloud functions deploy); Terraform owns the
    ## configuration. Ignoring the source keeps `terraform apply` from redeploying the
    ## bootstrap zip over the live code; traffic is managed by the pipeline.
    ignore_changes = [
      build_config[0].source,
      build_config[0].docker_repository,
      service_config[0].all_traffic_on_latest_revision,
    ]
  }

  depends_on = [
    google_secret_manager_secret_iam_member.fn,
    google_project_iam_member.gcs_agent_pubsub_publisher,
    google_project_iam_member.event_invoker_receiver,
    google_project_iam_member.function_build,
  ]
}

## The public API: every HTTP function is invocable by anyone; the app authenticates each
## request with its bearer session (health is public for uptime checks; partner_callbacks is
## called by ad networks and offerwalls, which authenticate each callback by its signature).
resource "google_cloud_run_v2_service_iam_member" "public_invoker" {
  for_each = local.http_functions

  ## Public by design: every route except signup/login/health requires a bearer session
  ## checked by the app.
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "allUsers"
}

## Event functions are invoked only by the event-invoker SA (Pub/Sub push OIDC, Eventarc).
resource "google_cloud_run_v2_service_iam_member" "event_invoker" {
  for_each = local.event_functions

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.fn[each.key].service_config[0].service
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.event_invoker.email}"
}

## Functions reach the database's private IP through this connector.
resource "google_vpc_access_connector" "this" {
  name          = "earnpay-${substr(var.env, 0, 4)}" ## max 25 chars
  region        = var.region
  network       = element(split("/", var.network_id), length(split("/", var.network_id)) - 1)
  ip_cidr_range = var.vpc_connector.ip_cidr_range
  machine_type  = var.vpc_connector.machine_type
  min_instances = var.vpc_connector.min_instances
  max_instances = var.vpc_connector.max_instances
}
