## Staging: same shape as production, smaller. Separate project.

project_id = "earnpay-staging"
env        = "staging"
region     = "europe-west1"

network_id    = "projects/earnpay-staging/global/networks/earnpay"
vpc_connector = { ip_cidr_range = "10.8.0.0/28" }

## Proxy hops appending to X-Forwarded-For (docs/deploy.md): functions are reached at their own URLs: only Google's front end appends to X-Forwarded-For.
trusted_proxy_hops = 1

app_origins = ["https://staging.app.earnpay.example"]

## The staff console (infra/console.tf) and the only origin the admin API answers CORS for.
console_domain = "console.staging.earnpay.example"

## Connection budget (worst case): 52 from the functions below + 10 reserve = 62
## <= 80 % of 100 = 80.
database = {
  tier                           = "db-custom-1-3840"
  max_connections                = 100
  connection_reserve             = 10
  retained_backups               = 30
  transaction_log_retention_days = 7
}

read_replicas = {
  read-a = {}
}

## Staging scales every function to at most 2 instances and keeps none warm.
function_scaling = {
  auth                  = { min_instances = 0, max_instances = 2 }
  videos                = { max_instances = 2 }
  progress              = { min_instances = 0, max_instances = 2 }
  earnings              = { max_instances = 2 }
  payouts               = { max_instances = 2 }
  kyc                   = { max_instances = 2 }
  privacy               = { max_instances = 2 }
  admin                 = { max_instances = 2 }
  health                = { max_instances = 2 }
  credit_earnings       = { max_instances = 2 }
  process_payouts       = { max_instances = 1 }
  run_maintenance       = { max_instances = 1 }
  kyc_document_uploaded = { max_instances = 2 }
  send_notifications    = { max_instances = 1 }
  export_user_data      = { max_instances = 2 }
}

notification_channels = []

## Outgoing email through the SMTP relay (password: the smtp-password secret, docs/deploy.md).
mail = {
  smtp_host       = "smtp.sendgrid.net"
  smtp_username   = "apikey"
  from            = "EarnPay <no-reply@staging.earnpay.example>"
  public_base_url = "https://app.staging.earnpay.example"
}
