## Secret Manager secrets. Terraform creates the containers and the access grants only:
## values are added out of band (docs/deploy.md, "Secrets") so they never enter the state
## file or the repository. Functions read them as environment variables resolved from the
## `latest` version when an instance starts; after adding a version, roll the functions
## (new revision) so every instance picks it up.

locals {
  secrets = {
    "payout-provider-api-key" = {
      env         = "PAYOUT_PROVIDER_API_KEY"
      description = "API credential of the payout provider, used only by process_payouts."
    }
    "smtp-password" = {
      env         = "SMTP_PASSWORD"
      description = "Password of the SMTP relay's login (var.mail.smtp_username), used only by send_notifications."
    }
    "risk-hash-key" = {
      env         = "RISK_HASH_KEY"
      description = "HMAC key of install-id hashes and payout destination fingerprints (docs/fraud.md): auth and payouts."
    }
  }
}

resource "google_secret_manager_secret" "this" {
  for_each = local.secrets

  secret_id = each.key
  labels    = { purpose = replace(each.key, "-", "_") }

  ## Pinned to our region: the payout credential is only used there, and a user-managed
  ## replica keeps the data residency the same as the database's.
  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }
}
