## Production. Function sizing uses the defaults in functions.tf (local.functions).

project_id = "earnpay-production"
env        = "production"
region     = "europe-west1"

network_id    = "projects/earnpay-production/global/networks/earnpay"
vpc_connector = { ip_cidr_range = "10.8.0.0/28", min_instances = 2, max_instances = 10 }

app_origins = ["https://app.earnpay.example"]

## The staff console (infra/console.tf) and the only origin the admin API answers CORS for.
console_domain = "console.earnpay.example"

## Connection budget (worst case): 137 from the functions + 10 reserve = 147
## <= 80 % of 200 = 160.
database = {
  tier                           = "db-custom-4-16384"
  max_connections                = 200
  connection_reserve             = 10
  retained_backups               = 30
  transaction_log_retention_days = 7
  disk_size_gb                   = 100
}

read_replicas = {
  read-a = { zone = "europe-west1-b" }
}

function_scaling = {}

kms_protection_level = "HSM"

## Set the on-call channels (projects/earnpay-production/notificationChannels/N) before the
## first apply; the check "alerting_has_receivers" warns while this is empty.
notification_channels = []
