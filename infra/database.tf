## Cloud SQL for PostgreSQL 16: the system of record (ledger, balances, payouts, outbox).
##
## Durability: REGIONAL (synchronous standby in a second zone, automatic failover), daily
## backups kept var.database.retained_backups times, and point-in-time recovery from WAL
## archived continuously, kept 7 days. RPO is minutes (well under the 1 h target); a
## point-in-time clone is the recovery path (docs/operations.md).
## Security: private IP only, TLS required, CMEK, IAM database authentication (no passwords
## for the application: each function logs in as its own service account).

## ---------------------------------------------------------------- private networking
resource "google_compute_global_address" "private_service_access" {
  count = var.private_service_access.create ? 1 : 0

  name          = "${local.prefix}-psa"
  purpose       = "VPC_PEERING"
  address_type  = "INTERNAL"
  prefix_length = var.private_service_access.prefix_length
  network       = var.network_id
}

resource "google_service_networking_connection" "private_service_access" {
  count = var.private_service_access.create ? 1 : 0

  network                 = var.network_id
  service                 = "servicenetworking.googleapis.com"
  reserved_peering_ranges = [google_compute_global_address.private_service_access[0].name]
}

## ---------------------------------------------------------------- connection budget
locals {
  db_connection_budget_per_function = {
    for k, f in local.function_config : k => f.max_instances * f.db_pool_size
  }
  db_connection_budget = sum(values(local.db_connection_budget_per_function)) + var.database.connection_reserve
  db_connection_limit  = floor(var.database.max_connections * 0.8)
}

## ---------------------------------------------------------------- primary
resource "google_sql_database_instance" "primary" {
  #checkov:skip=CKV_GCP_57:log_min_duration_statement=500 is required by the slow-query alert (docs/operations.md); statements carry bound parameters, not values, and logs stay in this project.
  #checkov:skip=CKV_GCP_6:ssl_mode=ENCRYPTED_ONLY rejects every unencrypted connection; all app and CI traffic uses the Cloud SQL connector, which already does mTLS with ephemeral IAM-bound client certificates.
  #checkov:skip=CKV_GCP_79:PostgreSQL 16 is the version the application and its test suite are built and tested on; major upgrades are planned in-place upgrades, not a lint default.
  #checkov:skip=CKV2_GCP_13:log_duration=on logs every statement (thousands per second); slow statements are logged by log_min_duration_statement=500 and all latencies are in Query Insights.
  name                = coalesce(var.database.instance_name, "${local.prefix}-pg16")
  database_version    = "POSTGRES_16"
  region              = var.region
  encryption_key_name = google_kms_crypto_key.keys["cloudsql"].id

  ## Two locks: this one stops `terraform destroy`/replacement, the one in settings stops
  ## deletion through the API or console.
  deletion_protection = true

  settings {
    tier                        = var.database.tier
    edition                     = var.database.edition
    availability_type           = "REGIONAL"
    deletion_protection_enabled = true
    disk_type                   = "PD_SSD"
    disk_size                   = var.database.disk_size_gb
    disk_autoresize             = true
    disk_autoresize_limit       = var.database.disk_autoresize_limit_gb
    user_labels                 = local.labels

    backup_configuration {
      enabled                        = true
      start_time                     = var.database.backup_start_time
      location                       = var.database.backup_location
      point_in_time_recovery_enabled = true
      transaction_log_retention_days = var.database.transaction_log_retention_days

      backup_retention_settings {
        retained_backups = var.database.retained_backups
        retention_unit   = "COUNT"
      }
    }

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = var.network_id
      ssl_mode                                      = "ENCRYPTED_ONLY"
      enable_private_path_for_google_cloud_services = true
    }

    ## Sunday night UTC, before the weekly ANALYZE (scheduler.tf).
    maintenance_window {
      day          = var.database.maintenance_day
      hour         = var.database.maintenance_hour
      update_track = "stable"
    }

    insights_config {
      query_insights_enabled  = true
      query_string_length     = 1024
      record_application_tags = true
      record_client_address   = false
    }

    ## Flags are written out (not a dynamic block) so static analysis (checkov) sees them.
    ## Replicas carry the same list: PostgreSQL refuses to run a hot standby whose
    ## max_connections is lower than the primary's.
    ## Sized for the connection budget (functions' pools + reserve <= 80 %).
    database_flags {
      name  = "max_connections"
      value = tostring(var.database.max_connections)
    }
    ## Statements slower than 500 ms are logged; the slow-query alert counts them.
    database_flags {
      name  = "log_min_duration_statement"
      value = "500"
    }
    ## Service accounts log in as CLOUD_IAM_SERVICE_ACCOUNT users (no passwords).
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    ## pgAudit records DDL and role changes (who granted what) for the audit trail; the
    ## one-time set-up in docs/deploy.md runs CREATE EXTENSION pgaudit (the embedded local
    ## PostgreSQL has no pgaudit, so it is not in a migration).
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }

  lifecycle {
    prevent_destroy = true
  }

  depends_on = [
    google_service_networking_connection.private_service_access,
    google_kms_crypto_key_iam_member.cloudsql_cmek,
  ]
}

## ---------------------------------------------------------------- read replicas
## Read replicas for reporting reads (earnings history/export, admin lists, health) and as
## the source of the monthly restore drill's comparisons. Same region (the CMEK key ring is
## regional); a cross-region DR replica needs a key ring in that region first.
resource "google_sql_database_instance" "replica" {
  for_each = var.read_replicas

  #checkov:skip=CKV_GCP_14:Read replicas cannot have their own backups; the primary's backups and PITR cover the data.
  #checkov:skip=CKV_GCP_57:Same flags as the primary (a standby must mirror them); the 500 ms statement log feeds the slow-query alert.
  #checkov:skip=CKV_GCP_6:ssl_mode=ENCRYPTED_ONLY rejects every unencrypted connection; all app and CI traffic uses the Cloud SQL connector, which already does mTLS with ephemeral IAM-bound client certificates.
  #checkov:skip=CKV_GCP_79:PostgreSQL 16 is the version the application and its test suite are built and tested on; major upgrades are planned in-place upgrades, not a lint default.
  #checkov:skip=CKV2_GCP_13:log_duration=on logs every statement (thousands per second); slow statements are logged by log_min_duration_statement=500 and all latencies are in Query Insights.
  name                 = "${local.prefix}-pg16-${each.key}"
  master_instance_name = google_sql_database_instance.primary.name
  database_version     = "POSTGRES_16"
  region               = var.region
  encryption_key_name  = google_kms_crypto_key.keys["cloudsql"].id
  deletion_protection  = true

  replica_configuration {
    failover_target = false
  }

  settings {
    tier                        = coalesce(each.value.tier, var.database.tier)
    edition                     = var.database.edition
    availability_type           = "ZONAL"
    deletion_protection_enabled = true
    disk_type                   = "PD_SSD"
    disk_autoresize             = true
    disk_autoresize_limit       = var.database.disk_autoresize_limit_gb
    user_labels                 = local.labels

    ip_configuration {
      ipv4_enabled                                  = false
      private_network                               = var.network_id
      ssl_mode                                      = "ENCRYPTED_ONLY"
      enable_private_path_for_google_cloud_services = true
    }

    dynamic "location_preference" {
      for_each = each.value.zone == null ? [] : [each.value.zone]
      content {
        zone = location_preference.value
      }
    }

    insights_config {
      query_insights_enabled  = true
      query_string_length     = 1024
      record_application_tags = true
      record_client_address   = false
    }

    ## Flags are written out (not a dynamic block) so static analysis (checkov) sees them.
    ## Replicas carry the same list: PostgreSQL refuses to run a hot standby whose
    ## max_connections is lower than the primary's.
    ## Sized for the connection budget (functions' pools + reserve <= 80 %).
    database_flags {
      name  = "max_connections"
      value = tostring(var.database.max_connections)
    }
    ## Statements slower than 500 ms are logged; the slow-query alert counts them.
    database_flags {
      name  = "log_min_duration_statement"
      value = "500"
    }
    ## Service accounts log in as CLOUD_IAM_SERVICE_ACCOUNT users (no passwords).
    database_flags {
      name  = "cloudsql.iam_authentication"
      value = "on"
    }
    database_flags {
      name  = "log_checkpoints"
      value = "on"
    }
    database_flags {
      name  = "log_connections"
      value = "on"
    }
    database_flags {
      name  = "log_disconnections"
      value = "on"
    }
    database_flags {
      name  = "log_lock_waits"
      value = "on"
    }
    database_flags {
      name  = "log_temp_files"
      value = "0"
    }
    database_flags {
      name  = "log_hostname"
      value = "on"
    }
    database_flags {
      name  = "log_min_messages"
      value = "error"
    }
    database_flags {
      name  = "log_min_error_statement"
      value = "error"
    }
    database_flags {
      name  = "log_statement"
      value = "ddl"
    }
    ## pgAudit records DDL and role changes (who granted what) for the audit trail; the
    ## one-time set-up in docs/deploy.md runs CREATE EXTENSION pgaudit (the embedded local
    ## PostgreSQL has no pgaudit, so it is not in a migration).
    database_flags {
      name  = "cloudsql.enable_pgaudit"
      value = "on"
    }
    database_flags {
      name  = "pgaudit.log"
      value = "ddl,role"
    }
  }
}

## ---------------------------------------------------------------- database and users
resource "google_sql_database" "earnpay" {
  name     = "earnpay"
  instance = google_sql_database_instance.primary.name

  ## Never drop the database from Terraform; removing it from code only forgets it.
  deletion_policy = "ABANDON"
}

## One IAM database user per function service account, plus the CI deployer that runs the
## migrations. The Postgres user name is the SA email without ".gserviceaccount.com".
## Privileges are granted by the migrations (docs/deploy.md, "Database roles").
resource "google_sql_user" "iam" {
  for_each = merge(
    { for k, sa in google_service_account.fn : k => sa.email },
    { deployer = google_service_account.deployer.email },
  )

  instance = google_sql_database_instance.primary.name
  name     = trimsuffix(each.value, ".gserviceaccount.com")
  type     = "CLOUD_IAM_SERVICE_ACCOUNT"
}

## ---------------------------------------------------------------- connection budget
## Worst case: every function at max instances with a full pool, plus the reserve for
## admin sessions, maintenance and migrations. Kept under 80 % of max_connections so the
## connections alert (monitoring.tf) fires before PostgreSQL refuses logins.
## A failed precondition stops the plan; the check block also reports drift on every plan.
resource "terraform_data" "connection_budget" {
  input = {
    budget = local.db_connection_budget
    limit  = local.db_connection_limit
  }

  lifecycle {
    precondition {
      condition     = local.db_connection_budget <= local.db_connection_limit
      error_message = "Connection budget ${local.db_connection_budget} (sum of max_instances x db_pool_size + reserve) exceeds 80 % of max_connections (${local.db_connection_limit}). Lower pools/instances or raise database.max_connections."
    }
  }
}

check "connection_budget" {
  assert {
    condition     = local.db_connection_budget <= local.db_connection_limit
    error_message = "Connection budget ${local.db_connection_budget} exceeds 80 % of max_connections (${local.db_connection_limit})."
  }
}
