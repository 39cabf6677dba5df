## Cloud Scheduler: the clock of the system. Every job publishes a JSON message to a topic
## (payout-batches or maintenance-tasks); the push subscriptions in pubsub.tf deliver it.
## All schedules are UTC.
##
## There is no partition-upkeep job: the ledger is hash-partitioned by user_id into a fixed
## set of partitions created by the migrations, so no partition ever needs to be created or
## detached on a calendar.
## unix-cron cannot say "first Sunday of the month" (day-of-month and day-of-week are ORed),
## so the monthly jobs run on fixed days at night, after the Sunday DB maintenance window.

locals {
  scheduler_jobs = {
    "payout-batches" = {
      description = "Pay approved payouts in batches."
      schedule    = "*/15 * * * *"
      topic       = "payout-batches"
      body        = { batch_size = 1000 }
    }
    "maintenance-outbox-sweep" = {
      description = "Relay outbox rows that were not published right after commit."
      schedule    = "* * * * *"
      topic       = "maintenance-tasks"
      body        = { task = "outbox_sweep" }
    }
    "maintenance-session-purge" = {
      description = "Delete expired sessions."
      schedule    = "17 * * * *"
      topic       = "maintenance-tasks"
      body        = { task = "session_purge" }
    }
    "maintenance-reconcile" = {
      description = "Reconcile account balances against ledger entries and payouts."
      schedule    = "30 1 * * *"
      topic       = "maintenance-tasks"
      body        = { task = "reconcile" }
    }
    "maintenance-analyze" = {
      description = "ANALYZE hot tables, Sunday night after the maintenance window."
      schedule    = "30 3 * * 0"
      topic       = "maintenance-tasks"
      body        = { task = "analyze" }
    }
    "maintenance-reindex" = {
      description = "REINDEX CONCURRENTLY bloated indexes, monthly at night."
      schedule    = "0 4 1 * *"
      topic       = "maintenance-tasks"
      body        = { task = "reindex" }
    }
    ## Clearing: pending credits whose clearing time has passed become available
    ## (docs/ledger.md). Every 5 minutes, so a credit clears at most ~5 minutes late.
    "maintenance-clearing" = {
      description = "Move cleared pending earnings to available balances."
      schedule    = "*/5 * * * *"
      topic       = "maintenance-tasks"
      body        = { task = "clearing" }
    }
    ## The drill clones the instance to a point in time, which outlasts one function run:
    ## each tick advances it one step (clone, wait, check, delete; state in restore_drills),
    ## and ticks after it is done do nothing (functions/maintenance/clone_drill.py).
    "maintenance-restore-drill" = {
      description = "Monthly restore drill: PITR clone, invariant checks, recovery time, clean-up."
      schedule    = "*/10 5-8 15 * *"
      topic       = "maintenance-tasks"
      body        = { task = "restore_drill" }
    }
  }
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
