## Provider and backend pins for the EarnPay platform.
##
## The backend is deliberately empty: each environment has its own state bucket and prefix,
## passed at init time so the same code serves staging and production:
##   terraform init -backend-config="bucket=<project>-tfstate" -backend-config="prefix=earnpay/<env>"
## Commit the .terraform.lock.hcl that `terraform init` writes so CI plans with the same
## provider builds that were reviewed.

terraform {
  ## `check` blocks (the connection-budget and alerting checks) need 1.5.
  required_version = ">= 1.5.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.20"
    }
    ## google-beta only for google_project_service_identity (the Cloud SQL and Pub/Sub
    ## service agents must exist before we can grant them the CMEK keys).
    google-beta = {
      source  = "hashicorp/google-beta"
      version = "~> 6.20"
    }
  }

  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

provider "google-beta" {
  project = var.project_id
  region  = var.region

  default_labels = local.labels
}

data "google_project" "this" {
  project_id = var.project_id
}

locals {
  labels = merge(var.labels, {
    app = "earnpay"
    env = var.env
  })

  ## Resource names are prefixed with app and env. Staging and production live in separate
  ## projects, but the prefix keeps names unambiguous in logs, alerts and billing exports.
  prefix = "earnpay-${var.env}"
}
