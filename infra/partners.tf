## Offerwall signing secrets in Secret Manager (docs/partners.md, "Where the secrets live").
##
## Partners are configuration made at run time by the admin API, so their secrets are too: the
## admin function creates one secret per offerwall, "<prefix><partner id>", on the partner's first
## rotation, and adds a version on every rotation; the database keeps only the version's resource
## name. Terraform therefore owns no secret here, only who may touch secrets with that prefix:
##
##   admin              create secrets and add versions (a custom role, nothing else: it never
##                      reads a secret back, lists, deletes or changes IAM)
##   partner_callbacks  read versions (secretAccessor) to verify postbacks
##   run_maintenance    disable versions whose rotation overlap is over (task partner_secrets_disable;
##                      a custom role with only that permission)
##
## Both are project-level grants narrowed by an IAM condition on the secret's resource name
## (projects/<number>/secrets/<prefix>...; a version's name starts with its secret's), because the
## secrets do not exist when Terraform runs. The other secrets of the project (secrets.tf) stay
## out of reach of both.

locals {
  partner_secret_prefix = "partner-offerwall-"

  ## Environment of the functions that use the secrets (shared/config.py names).
  partner_secret_env = {
    SECRET_STORE            = "secret_manager"
    PARTNER_SECRET_PREFIX   = local.partner_secret_prefix
    SECRET_MANAGER_LOCATION = var.region
  }

  partner_secret_condition = {
    title       = "offerwall-secrets-only"
    description = "Only the secrets named ${local.partner_secret_prefix}<partner id> (and their versions)."
    expression  = "resource.name.startsWith(\"projects/${data.google_project.this.number}/secrets/${local.partner_secret_prefix}\")"
  }
}

resource "google_project_iam_custom_role" "partner_secret_writer" {
  role_id     = "earnpay_${var.env}_partner_secret_writer"
  title       = "EarnPay partner secret writer (${var.env})"
  description = "Create an offerwall's signing secret and add versions to it (rotation); never read one."
  permissions = [
    "secretmanager.secrets.create",
    "secretmanager.versions.add",
  ]
}


resource "google_project_iam_custom_role" "partner_secret_disabler" {
  role_id     = "earnpay_${var.env}_partner_secret_disabler"
  title       = "EarnPay partner secret disabler (${var.env})"
  description = "Disable retired versions of offerwall signing secrets; never read, add or destroy one."
  permissions = [
    "secretmanager.versions.disable",
  ]
}

## Who may do what with the offerwall secrets: each grant narrowed to the prefix by the same condition.
locals {
  partner_secret_grants = {
    writer   = { fn = "admin", role = google_project_iam_custom_role.partner_secret_writer.id }
    reader   = { fn = "partner_callbacks", role = "roles/secretmanager.secretAccessor" }
    disabler = { fn = "run_maintenance", role = google_project_iam_custom_role.partner_secret_disabler.id }
  }
}

resource "google_project_iam_member" "partner_secrets" {
  for_each = local.partner_secret_grants

  project = var.project_id
  role    = each.value.role
  member  = "serviceAccount:${google_service_account.fn[each.value.fn].email}"

  condition {
    title       = local.partner_secret_condition.title
    description = local.partner_secret_condition.description
    expression  = local.partner_secret_condition.expression
  }
}

moved {
  from = google_project_iam_member.partner_secret_writer
  to   = google_project_iam_member.partner_secrets["writer"]
}

moved {
  from = google_project_iam_member.partner_secret_reader
  to   = google_project_iam_member.partner_secrets["reader"]
}
