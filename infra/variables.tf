## Inputs. Everything that differs between staging and production is a variable set in
## env/<env>.tfvars; everything that must be the same everywhere (function shapes, topics,
## schedules) lives in locals next to the resources that use it.

variable "project_id" {
  description = "GCP project that hosts this environment (one project per environment)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a valid GCP project id (6-30 chars, lowercase, digits, hyphens)."
  }
}

variable "env" {
  description = "Environment name; becomes EARNPAY_ENV in every function and the prefix of resource names."
  type        = string

  validation {
    condition     = contains(["staging", "production"], var.env)
    error_message = "env must be \"staging\" or \"production\"."
  }
}

variable "region" {
  description = "Region for Cloud SQL, functions, buckets, KMS and the scheduler."
  type        = string
  default     = "europe-west1"
}

variable "labels" {
  description = "Extra labels added to every resource (app and env are always set)."
  type        = map(string)
  default     = {}
}

variable "network_id" {
  description = "Self link / id of the VPC the database gets its private IP on, e.g. projects/P/global/networks/N."
  type        = string

  validation {
    condition     = can(regex("^projects/[^/]+/global/networks/[^/]+$", var.network_id))
    error_message = "network_id must look like projects/PROJECT/global/networks/NETWORK."
  }
}

variable "private_service_access" {
  description = "Private services access (VPC peering with Google's service producer network) used by Cloud SQL and the Cloud Build private pool. Set create=false if the network already has it."
  type = object({
    create        = optional(bool, true)
    prefix_length = optional(number, 20)
  })
  default = {}

  validation {
    condition     = var.private_service_access.prefix_length >= 16 && var.private_service_access.prefix_length <= 24
    error_message = "private_service_access.prefix_length must be between 16 and 24."
  }
}

variable "vpc_connector" {
  description = "Serverless VPC Access connector that lets the functions reach the database's private IP."
  type = object({
    ip_cidr_range = string
    machine_type  = optional(string, "e2-micro")
    min_instances = optional(number, 2)
    max_instances = optional(number, 3)
  })

  validation {
    condition     = can(cidrnetmask(var.vpc_connector.ip_cidr_range)) && endswith(var.vpc_connector.ip_cidr_range, "/28")
    error_message = "vpc_connector.ip_cidr_range must be an unused /28 range."
  }
}

variable "database" {
  description = "Primary Cloud SQL for PostgreSQL 16 instance sizing and protection settings."
  type = object({
    ## Defaults to earnpay-<env>-pg16. Set only when cutting over to a restored clone
    ## (docs/operations.md, "Restore"): Cloud SQL instance names cannot be reused for a week.
    instance_name                  = optional(string)
    tier                           = string
    edition                        = optional(string, "ENTERPRISE")
    disk_size_gb                   = optional(number, 50)
    disk_autoresize_limit_gb       = optional(number, 1000)
    max_connections                = number
    connection_reserve             = optional(number, 10)
    retained_backups               = optional(number, 30)
    transaction_log_retention_days = optional(number, 7)
    backup_start_time              = optional(string, "23:00")
    backup_location                = optional(string)
    maintenance_day                = optional(number, 7)
    maintenance_hour               = optional(number, 2)
  })

  validation {
    condition     = var.database.max_connections >= 50 && var.database.max_connections <= 5000
    error_message = "database.max_connections must be between 50 and 5000."
  }
  validation {
    condition     = var.database.connection_reserve >= 5
    error_message = "database.connection_reserve must keep at least 5 connections for admin, maintenance and migrations."
  }
  validation {
    condition     = var.database.retained_backups >= 7 && var.database.retained_backups <= 365
    error_message = "database.retained_backups must be between 7 and 365."
  }
  ## PITR log retention is capped at 7 days on the ENTERPRISE edition; less than 7 shortens
  ## the window in which a point-in-time clone is possible.
  validation {
    condition     = var.database.transaction_log_retention_days >= 1 && var.database.transaction_log_retention_days <= 7
    error_message = "database.transaction_log_retention_days must be between 1 and 7 (ENTERPRISE edition limit)."
  }
  validation {
    condition     = contains(["ENTERPRISE", "ENTERPRISE_PLUS"], var.database.edition)
    error_message = "database.edition must be ENTERPRISE or ENTERPRISE_PLUS."
  }
  validation {
    condition     = var.database.maintenance_day >= 1 && var.database.maintenance_day <= 7 && var.database.maintenance_hour >= 0 && var.database.maintenance_hour <= 23
    error_message = "database.maintenance_day is 1 (Monday) to 7 (Sunday); maintenance_hour is 0-23 UTC."
  }
}

variable "read_replicas" {
  description = "Read replicas of the primary, keyed by a short stable name (part of the instance name). The first key in sorted order serves DB_REPLICA_CONNECTION_NAME. Same region as the primary: the CMEK key ring is regional."
  type = map(object({
    tier = optional(string)
    zone = optional(string)
  }))

  validation {
    condition     = length(var.read_replicas) >= 1
    error_message = "At least one read replica is required (reporting reads and the restore drill use it)."
  }
  validation {
    condition     = alltrue([for k in keys(var.read_replicas) : can(regex("^[a-z][a-z0-9-]{0,15}$", k))])
    error_message = "Replica keys must be short lowercase names (letters, digits, hyphens; max 16 chars)."
  }
}

variable "function_scaling" {
  description = "Per-function overrides of the scaling defaults in local.functions (key = function name). The connection budget is checked on the merged values."
  type = map(object({
    min_instances = optional(number)
    max_instances = optional(number)
    db_pool_size  = optional(number)
  }))
  default = {}

  validation {
    condition = alltrue(flatten([for k, v in var.function_scaling : [
      for n in [v.min_instances, v.max_instances, v.db_pool_size] : n == null ? true : n >= 0
    ]]))
    error_message = "Scaling numbers must be non-negative."
  }
}

variable "python_runtime" {
  description = "Cloud Functions runtime for every function."
  type        = string
  default     = "python311"

  validation {
    condition     = can(regex("^python3[0-9]+$", var.python_runtime))
    error_message = "python_runtime must be a Cloud Functions python runtime id such as python311."
  }
}

variable "source_object" {
  description = "Object in the function-sources bucket holding the zipped repository used when a function is first created. Later code deploys come from Cloud Build (gcloud functions deploy), so Terraform ignores changes to it."
  type        = string
  default     = "bootstrap/source.zip"
}

variable "app_origins" {
  description = "Origins of the web app allowed to PUT KYC documents to signed upload URLs (bucket CORS)."
  type        = list(string)

  validation {
    condition     = length(var.app_origins) > 0 && alltrue([for o in var.app_origins : can(regex("^https://[a-z0-9.-]+(:[0-9]+)?$", o))])
    error_message = "app_origins must be a non-empty list of https origins without a path."
  }
}

variable "console_domain" {
  description = "Domain of the staff console (served by Cloud CDN, infra/console.tf); its https origin is the only one the admin and auth functions answer CORS for."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", var.console_domain))
    error_message = "console_domain must be a DNS name such as console.earnpay.example (no scheme, no path)."
  }
}

variable "mail" {
  description = "Outgoing email: the SMTP relay (TLS always; the password is the smtp-password secret), the sender, and the app's public URL every link in an email is built from."
  type = object({
    smtp_host       = string
    smtp_port       = optional(number, 587)
    smtp_tls        = optional(string, "starttls")
    smtp_username   = string
    from            = string
    public_base_url = string
  })

  validation {
    condition     = contains(["starttls", "tls"], var.mail.smtp_tls) && can(regex("^https://[a-z0-9.-]+(:[0-9]+)?(/[^?#]*)?$", var.mail.public_base_url))
    error_message = "mail.smtp_tls must be starttls or tls, and mail.public_base_url an https URL."
  }
}

variable "trusted_proxy_hops" {
  description = "Proxies in front of the functions that append the caller's address to X-Forwarded-For (docs/deploy.md): 1 for Cloud Functions' own front end, 2 behind an external HTTPS load balancer. The app reads the entry that many places from the right, so entries a client writes itself are ignored."
  type        = number

  validation {
    condition     = var.trusted_proxy_hops >= 1 && var.trusted_proxy_hops <= 5 && floor(var.trusted_proxy_hops) == var.trusted_proxy_hops
    error_message = "trusted_proxy_hops must be a whole number from 1 to 5 (0 is for local runs only: deployed functions always sit behind Google's front end)."
  }
}

variable "kyc_retention_days" {
  description = "Days a KYC document is kept before the lifecycle deletes it (AML record keeping: at least 5 years)."
  type        = number
  default     = 1826

  validation {
    condition     = var.kyc_retention_days >= 1826
    error_message = "KYC documents must be retained at least 5 years (1826 days)."
  }
}

variable "export_retention_days" {
  description = "Days after which privacy exports are deleted from the exports bucket."
  type        = number
  default     = 7

  validation {
    condition     = var.export_retention_days >= 1 && var.export_retention_days <= 30
    error_message = "export_retention_days must be between 1 and 30."
  }
}

variable "kms_protection_level" {
  description = "Protection level of the KMS keys: SOFTWARE or HSM."
  type        = string
  default     = "SOFTWARE"

  validation {
    condition     = contains(["SOFTWARE", "HSM"], var.kms_protection_level)
    error_message = "kms_protection_level must be SOFTWARE or HSM."
  }
}

variable "notification_channels" {
  description = "Cloud Monitoring notification channel ids (projects/P/notificationChannels/N) that every alert policy notifies."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for c in var.notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "notification_channels entries must be full channel ids: projects/P/notificationChannels/N."
  }
}

variable "alerts" {
  description = "Alert thresholds."
  type = object({
    slow_queries_per_10m = optional(number, 5)
    error_rate_5xx       = optional(number, 0.02)
    watch_accuracy_min   = optional(number, 0.9)
  })
  default = {}

  validation {
    condition     = var.alerts.error_rate_5xx > 0 && var.alerts.error_rate_5xx < 1
    error_message = "alerts.error_rate_5xx is a fraction between 0 and 1."
  }
}
