## Cloud Scheduler: the clock of the system. Every job publishes a JSON message to a topic
## (payout-batches or maintenance-tasks); the push subscriptions in pubsub.tf deliver it.
## All schedules are UTC.
##
## The jobs (name, description, cron schedule, topic, JSON body) live in infra/topology.yaml,
## which the local platform's scheduler stand-in (`python main.py serve`) reads too.

locals {
  scheduler_jobs = yamldecode(file("${path.module}/topology.yaml")).scheduler_jobs
}

resource "google_cloud_scheduler_job" "this" {
  for_each = local.scheduler_jobs

  name        = each.key
  description = each.value.description
  region      = var.region
  schedule    = each.value.schedule
  time_zone   = "UTC"

  ## A missed tick is harmless (the next one does the work); do not pile up retries.
  retry_config {
    retry_count = 1
  }

  pubsub_target {
    topic_name = google_pubsub_topic.this[each.value.topic].id
    data       = base64encode(jsonencode(each.value.body))
    attributes = { source = "cloud-scheduler", job = each.key }
  }
}
