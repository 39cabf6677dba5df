## Values the pipeline, the docs and operators need.

output "function_urls" {
  description = "Public URL of every function (https://REGION-PROJECT.cloudfunctions.net/NAME for HTTP ones)."
  value       = { for k, f in google_cloudfunctions2_function.fn : k => f.url }
}

output "function_services" {
  description = "Cloud Run service behind each function (used by the pipeline to move traffic)."
  value       = { for k, f in local.function_config : k => f.name }
}

output "function_service_accounts" {
  description = "Runtime service account of each function."
  value       = { for k, sa in google_service_account.fn : k => sa.email }
}

output "db_instance_connection_name" {
  description = "Primary instance connection name (DB_INSTANCE_CONNECTION_NAME)."
  value       = google_sql_database_instance.primary.connection_name
}

output "db_replica_connection_names" {
  description = "Connection name of each read replica."
  value       = { for k, r in google_sql_database_instance.replica : k => r.connection_name }
}

output "db_iam_users" {
  description = "PostgreSQL user names of the IAM database users (grant them the app role)."
  value       = { for k, u in google_sql_user.iam : k => u.name }
}

output "db_connection_budget" {
  description = "Worst-case connections of all functions plus the reserve, and the 80 % limit."
  value = {
    per_function = local.db_connection_budget_per_function
    reserve      = var.database.connection_reserve
    total        = local.db_connection_budget
    limit        = local.db_connection_limit
    max          = var.database.max_connections
  }
}

output "buckets" {
  description = "Bucket names by purpose."
  value       = merge({ for k, b in google_storage_bucket.this : k => b.name }, { access-logs = google_storage_bucket.access_logs.name })
}

output "topics" {
  description = "Topic ids by name."
  value       = { for k, t in google_pubsub_topic.this : k => t.id }
}

output "dead_letter_subscriptions" {
  description = "Pull subscriptions holding dead-lettered messages, by source subscription."
  value       = { for k, s in google_pubsub_subscription.dead_letter_hold : k => s.id }
}

output "payout_details_kek" {
  description = "KMS key that wraps payout-detail data keys (PAYOUT_DETAILS_KEK)."
  value       = google_kms_crypto_key.keys["payout-details-kek"].id
}

output "deployer_service_account" {
  description = "Service account the Cloud Build trigger must run as."
  value       = google_service_account.deployer.email
}

output "worker_pool" {
  description = "Private Cloud Build pool (peered with the VPC) for the pipeline."
  value       = google_cloudbuild_worker_pool.this.id
}

output "console_url" {
  description = "The staff console (Cloud CDN in front of the console bucket); point console_domain's DNS A record at console_ip."
  value       = local.console_origin
}

output "console_ip" {
  description = "Global address of the console's HTTPS load balancer."
  value       = google_compute_global_address.console.address
}

output "console_bucket" {
  description = "Bucket the pipeline uploads the console build to."
  value       = google_storage_bucket.this["console"].name
}
