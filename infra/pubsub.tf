## Pub/Sub: the topics of the public surface, and how their messages reach the functions.
##
## Design (one path per message, no Eventarc for Pub/Sub):
##   topic --push subscription (ours)--> function URL (OIDC token of the event-invoker SA)
##            |  non-2xx answer  -> redelivered with exponential backoff (retry_policy)
##            |  after N attempts -> forwarded by Pub/Sub to <topic>-dead-letter
##            v
##   <topic>-dead-letter --pull subscription "<topic>-dead-letter-hold"--> kept 7 days for
##   inspection and replay (docs/operations.md). A topic with no subscription drops
##   messages, hence the hold subscription.
## The app (shared/events.py) also publishes a message it judges permanently bad to the
## same <topic>-dead-letter topic itself and acks it, so both failure paths end up in one
## place and one alert.
## Functions therefore have no Pub/Sub event_trigger: a second, Eventarc-made subscription
## would deliver every message twice and cannot be given a dead-letter policy here.
## Handler contract: raise (HTTP 5xx) = retry later; permanent error = log at ERROR,
## publish to the dead-letter topic, return 2xx. Delivery is at-least-once, consumers deduplicate in Postgres by message id.

locals {
  ## topics => consumer function (null: no consumer in this repo yet) and delivery tuning, with the
  ## retry policy of every push subscription: infra/topology.yaml, the one source of truth that the
  ## local platform (`python main.py serve`) reads too.
  topology = yamldecode(file("${path.module}/topology.yaml"))
  topics   = local.topology.topics

  push_subscriptions = {
    for t, cfg in local.topics : "${t}-push" => merge(cfg, { topic = t }) if cfg.consumer != null
  }
}

resource "google_pubsub_topic" "this" {
  for_each = local.topics

  name                       = each.key
  kms_key_name               = google_kms_crypto_key.keys["pubsub"].id
  message_retention_duration = "604800s" ## 7 days

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_kms_crypto_key_iam_member.pubsub_cmek]
}

## One dead-letter topic per push subscription (one subscription per topic), named after
## the topic because the app publishes to "<topic>-dead-letter" too.
resource "google_pubsub_topic" "dead_letter" {
  for_each = local.push_subscriptions

  name                       = "${each.value.topic}-dead-letter"
  kms_key_name               = google_kms_crypto_key.keys["pubsub"].id
  message_retention_duration = "604800s"

  message_storage_policy {
    allowed_persistence_regions = [var.region]
  }

  depends_on = [google_kms_crypto_key_iam_member.pubsub_cmek]
}

resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions

  name                       = each.key
  topic                      = google_pubsub_topic.this[each.value.topic].id
  ack_deadline_seconds       = each.value.ack_deadline
  message_retention_duration = "604800s"
  retain_acked_messages      = false

  push_config {
    push_endpoint = google_cloudfunctions2_function.fn[each.value.consumer].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.event_invoker.email
      audience              = google_cloudfunctions2_function.fn[each.value.consumer].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = local.topology.retry_policy.minimum_backoff
    maximum_backoff = local.topology.retry_policy.maximum_backoff
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter[each.key].id
    max_delivery_attempts = each.value.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" ## never expire, even when idle
  }

  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_publisher,
    google_cloud_run_v2_service_iam_member.event_invoker,
  ]
}

## Keeps dead-lettered messages for inspection and replay; deliberately has no dead-letter
## policy of its own (nothing consumes it automatically).
resource "google_pubsub_subscription" "dead_letter_hold" {
  for_each = local.push_subscriptions

  name                       = "${each.value.topic}-dead-letter-hold"
  topic                      = google_pubsub_topic.dead_letter[each.key].id
  ack_deadline_seconds       = 60
  message_retention_duration = "604800s"

  expiration_policy {
    ttl = ""
  }
}
