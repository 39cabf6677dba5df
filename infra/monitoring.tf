## Alerting. Each policy's documentation points to its runbook in docs/operations.md.
##
## The application logs structured JSON (Cloud Logging parses it into jsonPayload). These
## alerts depend on three event names, which are a contract with the app:
##   jsonPayload.event = "slow_query"     WARNING, a query over 500 ms seen by the app
##   jsonPayload.event = "credit_failed"  ERROR, a credit request dropped for good
##   jsonPayload.event = "payout_failed"  ERROR, a payout attempt failed
## plus the generic "<function>_dead_lettered" ERROR events of shared/events.py for the
## credit_earnings and process_payouts consumers.

locals {
  ## Logs of our functions (2nd-gen functions run as Cloud Run revisions).
  function_log_filter = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=(${join(" OR ", [for f in local.function_config : "\"${f.name}\""])})"

  log_metrics = {
    "earnpay/slow_query" = {
      description = "Application queries slower than 500 ms (app log event slow_query)."
      filter      = "${local.function_log_filter} AND jsonPayload.event=\"slow_query\""
    }
    "earnpay/credit_failed" = {
      description = "Earnings credit requests dropped by credit_earnings (app log event credit_failed)."
      filter      = "${local.function_log_filter} AND jsonPayload.event=(\"credit_failed\" OR \"credit_earnings_dead_lettered\") AND severity>=ERROR"
    }
    "earnpay/payout_failed" = {
      description = "Failed payout attempts (app log event payout_failed)."
      filter      = "${local.function_log_filter} AND jsonPayload.event=(\"payout_failed\" OR \"payout_stuck\" OR \"process_payouts_dead_lettered\") AND severity>=ERROR"
    }
    "earnpay/integrity_failed" = {
      description = "Ledger reconciliation found a broken invariant, or a restore drill failed."
      filter      = "${local.function_log_filter} AND jsonPayload.event=(\"ledger_reconciliation_failed\" OR \"restore_drill_failed\") AND severity>=ERROR"
    }
    "earnpay/maintenance_failed" = {
      description = "A maintenance task raised (Pub/Sub retries it, then dead-letters it)."
      filter      = "${local.function_log_filter} AND jsonPayload.event=\"maintenance_task_failed\" AND severity>=ERROR"
    }
    ## PostgreSQL's own log of statements over log_min_duration_statement (500 ms): catches
    ## slow statements the app did not time (migrations, maintenance, ad-hoc sessions).
    "earnpay/db_slow_statement" = {
      description = "Statements logged by Cloud SQL for exceeding log_min_duration_statement."
      filter      = "resource.type=\"cloudsql_database\" AND log_id(\"cloudsql.googleapis.com/postgres.log\") AND textPayload:\"duration:\""
    }
  }

  alert_doc = "https://github.com/earnpay/earnpay/blob/main/docs/operations.md"

  connections_threshold = floor(var.database.max_connections * 0.8)
}

resource "google_logging_metric" "this" {
  for_each = local.log_metrics

  name        = each.key
  description = each.value.description
  filter      = each.value.filter

  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
  }
}

## ---------------------------------------------------------------- query time > 500 ms
resource "google_monitoring_alert_policy" "slow_queries" {
  display_name          = "[${var.env}] Slow queries (> 500 ms)"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "App slow_query events over ${var.alerts.slow_queries_per_10m} in 10 min"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.this["earnpay/slow_query"].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.slow_queries_per_10m
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  conditions {
    display_name = "PostgreSQL slow statements over ${var.alerts.slow_queries_per_10m} in 10 min"
    condition_threshold {
      filter          = "resource.type=\"cloudsql_database\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.this["earnpay/db_slow_statement"].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.alerts.slow_queries_per_10m
      duration        = "0s"
      aggregations {
        alignment_period     = "600s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    content   = "Queries slower than 500 ms. Runbook: ${local.alert_doc}#slow-queries"
    mime_type = "text/markdown"
  }
}

## ---------------------------------------------------------------- connections > 80 %
resource "google_monitoring_alert_policy" "db_connections" {
  display_name          = "[${var.env}] Database connections > 80 % of max_connections"
  combiner              = "OR"
  severity              = "CRITICAL"
  notification_channels = var.notification_channels

  conditions {
    display_name = "num_backends > ${local.connections_threshold} (80 % of ${var.database.max_connections})"
    condition_threshold {
      filter          = "resource.type=\"cloudsql_database\" AND metric.type=\"cloudsql.googleapis.com/database/postgresql/num_backends\" AND resource.labels.database_id=one_of(${join(", ", [for i in concat([google_sql_database_instance.primary.name], [for r in google_sql_database_instance.replica : r.name]) : "\"${var.project_id}:${i}\""])})"
      comparison      = "COMPARISON_GT"
      threshold_value = local.connections_threshold
      duration        = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_MAX"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.database_id"]
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = "Connections above 80 % of max_connections (${var.database.max_connections}). Runbook: ${local.alert_doc}#database-connections"
    mime_type = "text/markdown"
  }
}

## ---------------------------------------------------------------- other dead letters
resource "google_monitoring_alert_policy" "dead_letters" {
  display_name          = "[${var.env}] Messages dead-lettered (maintenance, privacy exports)"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "Dead-letter topics received messages"
    condition_threshold {
      filter          = "resource.type=\"pubsub_topic\" AND metric.type=\"pubsub.googleapis.com/topic/send_message_operation_count\" AND resource.labels.topic_id=one_of(${join(", ", [for k in ["maintenance-tasks-push", "privacy-exports-push"] : "\"${google_pubsub_topic.dead_letter[k].name}\""])})"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.topic_id"]
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    content   = "A maintenance task or privacy export exhausted its retries. Runbook: ${local.alert_doc}#dead-letters"
    mime_type = "text/markdown"
  }
}

## ---------------------------------------------------------------- function 5xx rate
resource "google_monitoring_alert_policy" "function_5xx" {
  display_name          = "[${var.env}] Function 5xx rate > ${var.alerts.error_rate_5xx * 100} %"
  combiner              = "OR"
  severity              = "ERROR"
  notification_channels = var.notification_channels

  conditions {
    display_name = "5xx share of requests per function over 5 min"
    condition_threshold {
      filter             = "resource.type=\"cloud_run_revision\" AND metric.type=\"run.googleapis.com/request_count\" AND metric.labels.response_code_class=\"5xx\" AND resource.labels.service_name=one_of(${join(", ", [for f in local.function_config : "\"${f.name}\""])})"
      denominator_filter = "resource.type=\"cloud_run_revision\" AND metric.type=\"run.googleapis.com/request_count\" AND resource.labels.service_name=one_of(${join(", ", [for f in local.function_config : "\"${f.name}\""])})"
      comparison         = "COMPARISON_GT"
      threshold_value    = var.alerts.error_rate_5xx
      duration           = "300s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
      denominator_aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.labels.service_name"]
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = "A function answers 5xx to more than ${var.alerts.error_rate_5xx * 100} % of requests (for event functions: deliveries being retried). Runbook: ${local.alert_doc}#function-5xx"
    mime_type = "text/markdown"
  }
}

## Production without notification channels would alert nobody.
check "alerting_has_receivers" {
  assert {
    condition     = var.env != "production" || length(var.notification_channels) > 0
    error_message = "notification_channels is empty in production: alerts will fire silently."
  }
}

## ---------------------------------------------------------------- log events (immediate)
## One policy per entry: it fires on a single matching log line, and, where dead_letter names a push
## subscription, on a single message reaching that subscription's dead-letter topic.
##   credit:  failed earnings credits (credit_failed logged, or a credit request dead-lettered)
##   payout:  payout errors (payout_failed / payout_stuck logged, or a payout batch dead-lettered)
locals {
  log_event_alerts = {
    "credit" = {
      title       = "Earnings credit failed"
      summary     = "A credit request was dead-lettered or dropped; a user is missing earnings"
      metric      = "earnpay/credit_failed"
      dead_letter = "earnings-credit-requests-push"
      severity    = "CRITICAL"
      auto_close  = "1800s"
      runbook     = "earnings-credit-failed"
    }
    "payout" = {
      title       = "Payout failed"
      summary     = "A payout failed or a payout batch was dead-lettered"
      metric      = "earnpay/payout_failed"
      dead_letter = "payout-batches-push"
      severity    = "CRITICAL"
      auto_close  = "1800s"
      runbook     = "payout-failed"
    }
    "integrity" = {
      title       = "Ledger reconciliation or restore drill failed"
      summary     = "Ledger reconciliation or restore drill failed"
      metric      = "earnpay/integrity_failed"
      dead_letter = null
      severity    = "CRITICAL"
      auto_close  = "3600s"
      runbook     = "ledger-reconciliation-failed"
    }
    "maintenance" = {
      title       = "Maintenance task failed"
      summary     = "Maintenance task failed"
      metric      = "earnpay/maintenance_failed"
      dead_letter = null
      severity    = "ERROR"
      auto_close  = "3600s"
      runbook     = "maintenance-task-failed"
    }
  }
}

resource "google_monitoring_alert_policy" "log_event" {
  for_each = local.log_event_alerts

  display_name          = "[${var.env}] ${each.value.title}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels

  conditions {
    display_name = "${each.value.metric} logged"
    condition_threshold {
      filter          = "resource.type=\"cloud_run_revision\" AND metric.type=\"logging.googleapis.com/user/${google_logging_metric.this[each.value.metric].name}\""
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = "ALIGN_SUM"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  dynamic "conditions" {
    for_each = each.value.dead_letter == null ? [] : [each.value.dead_letter]
    content {
      display_name = "Message dead-lettered on ${google_pubsub_topic.dead_letter[conditions.value].name}"
      condition_threshold {
        filter          = "resource.type=\"pubsub_topic\" AND metric.type=\"pubsub.googleapis.com/topic/send_message_operation_count\" AND resource.labels.topic_id=\"${google_pubsub_topic.dead_letter[conditions.value].name}\""
        comparison      = "COMPARISON_GT"
        threshold_value = 0
        duration        = "0s"
        aggregations {
          alignment_period     = "60s"
          per_series_aligner   = "ALIGN_SUM"
          cross_series_reducer = "REDUCE_SUM"
        }
      }
    }
  }

  alert_strategy {
    auto_close = each.value.auto_close
  }

  documentation {
    content   = "${each.value.summary}. Runbook: ${local.alert_doc}#${each.value.runbook}"
    mime_type = "text/markdown"
  }
}

## ---------------------------------------------------------------- the product document's metrics
## OpenTelemetry metrics written by the functions (shared/metrics.py) arrive as
## workload.googleapis.com/<name>. The names are a contract with that module.
locals {
  otel = "workload.googleapis.com"
  otel_alerts = {
    "pool_saturated" = {
      title      = "Connection pool utilisation > 80 %"
      metric     = "earnpay.db.pool.utilisation"
      extra      = ""
      aligner    = "ALIGN_MAX"
      reducer    = "REDUCE_MAX"
      threshold  = 0.8
      duration   = "300s"
      severity   = "CRITICAL"
      runbook    = "connection-pool-saturated"
      summary    = "A function's instances hold more than 80 % of their pooled connections for 5 min: requests will soon wait for a connection (503 database_busy)"
      percentile = false
    }
    "query_p99" = {
      title      = "Query p99 > 500 ms"
      metric     = "earnpay.db.query.duration"
      extra      = ""
      aligner    = "ALIGN_PERCENTILE_99"
      reducer    = "REDUCE_MAX"
      threshold  = 500
      duration   = "300s"
      severity   = "WARNING"
      runbook    = "slow-queries"
      summary    = "Some query's p99 (by table and query name) is above 500 ms"
      percentile = true
    }
    "heartbeat_p99" = {
      title      = "Progress heartbeat p99 > 50 ms"
      metric     = "earnpay.http.request.duration"
      extra      = " AND metric.labels.function=\"progress\""
      aligner    = "ALIGN_PERCENTILE_99"
      reducer    = "REDUCE_MAX"
      threshold  = 50
      duration   = "600s"
      severity   = "WARNING"
      runbook    = "heartbeat-latency"
      summary    = "Video progress updates miss the product document's 50 ms floor at p99 for 10 min"
      percentile = true
    }
  }
}

resource "google_monitoring_alert_policy" "otel" {
  for_each = local.otel_alerts

  display_name          = "[${var.env}] ${each.value.title}"
  combiner              = "OR"
  severity              = each.value.severity
  notification_channels = var.notification_channels

  conditions {
    display_name = "${each.value.metric} over ${each.value.threshold}"
    condition_threshold {
      filter          = "metric.type=\"${local.otel}/${each.value.metric}\"${each.value.extra}"
      comparison      = "COMPARISON_GT"
      threshold_value = each.value.threshold
      duration        = each.value.duration
      aggregations {
        alignment_period     = "60s"
        per_series_aligner   = each.value.aligner
        cross_series_reducer = each.value.reducer
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = "${each.value.summary}. Runbook: ${local.alert_doc}#${each.value.runbook}"
    mime_type = "text/markdown"
  }
}

## Watch-time tracking accuracy: credited seconds against the seconds playing heartbeats claim.
## Far below 1 means heartbeats are being refused or clocks drift; above 1 cannot happen (the
## SQL credits at most the wall-clock time since the previous heartbeat).
resource "google_monitoring_alert_policy" "watch_accuracy" {
  display_name          = "[${var.env}] Watch-time tracking accuracy < ${var.alerts.watch_accuracy_min * 100} %"
  combiner              = "OR"
  severity              = "WARNING"
  notification_channels = var.notification_channels

  conditions {
    display_name = "credited / reported watch seconds over 30 min"
    condition_threshold {
      filter             = "metric.type=\"${local.otel}/earnpay.watch.credited_seconds\""
      denominator_filter = "metric.type=\"${local.otel}/earnpay.watch.reported_seconds\""
      comparison         = "COMPARISON_LT"
      threshold_value    = var.alerts.watch_accuracy_min
      duration           = "1800s"
      aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
      denominator_aggregations {
        alignment_period     = "300s"
        per_series_aligner   = "ALIGN_RATE"
        cross_series_reducer = "REDUCE_SUM"
      }
    }
  }

  alert_strategy {
    auto_close = "3600s"
  }

  documentation {
    content   = "Less watch time is credited than playing heartbeats claim. Runbook: ${local.alert_doc}#watch-time-accuracy"
    mime_type = "text/markdown"
  }
}

## One dashboard with the product document's key metrics.
locals {
  dashboard_tiles = [
    { title = "Connection pool utilisation (max by pool)", filter = "metric.type=\"${local.otel}/earnpay.db.pool.utilisation\"", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = ["metric.labels.pool"] },
    { title = "Query time p95 by table (ms)", filter = "metric.type=\"${local.otel}/earnpay.db.query.duration\"", aligner = "ALIGN_PERCENTILE_95", reducer = "REDUCE_MAX", group = ["metric.labels.table"] },
    { title = "Query time p95 by query (ms)", filter = "metric.type=\"${local.otel}/earnpay.db.query.duration\"", aligner = "ALIGN_PERCENTILE_95", reducer = "REDUCE_MAX", group = ["metric.labels.query"] },
    { title = "Active user sessions (5 min)", filter = "metric.type=\"${local.otel}/earnpay.sessions.active\"", aligner = "ALIGN_MAX", reducer = "REDUCE_MAX", group = [] },
    { title = "Heartbeats/s by status", filter = "metric.type=\"${local.otel}/earnpay.heartbeats\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.labels.status"] },
    { title = "Rejected heartbeats/s by reason", filter = "metric.type=\"${local.otel}/earnpay.heartbeats.rejected\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.labels.reason"] },
    { title = "Credits/s by outcome", filter = "metric.type=\"${local.otel}/earnpay.credits\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = ["metric.labels.outcome"] },
    { title = "Watch seconds credited/s", filter = "metric.type=\"${local.otel}/earnpay.watch.credited_seconds\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = [] },
    { title = "Watch seconds reported/s", filter = "metric.type=\"${local.otel}/earnpay.watch.reported_seconds\"", aligner = "ALIGN_RATE", reducer = "REDUCE_SUM", group = [] },
    { title = "Request p99 by function (ms)", filter = "metric.type=\"${local.otel}/earnpay.http.request.duration\"", aligner = "ALIGN_PERCENTILE_99", reducer = "REDUCE_MAX", group = ["metric.labels.function"] },
    { title = "Database connections (Cloud SQL)", filter = "metric.type=\"cloudsql.googleapis.com/database/postgresql/num_backends\" AND resource.type=\"cloudsql_database\"", aligner = "ALIGN_MAX", reducer = "REDUCE_SUM", group = ["resource.labels.database_id"] },
  ]
}

resource "google_monitoring_dashboard" "capacity" {
  dashboard_json = jsonencode({
    displayName = "EarnPay ${var.env}: capacity and key metrics"
    gridLayout = {
      columns = 3
      widgets = [for t in local.dashboard_tiles : {
        title = t.title
        xyChart = {
          dataSets = [{
            plotType = "LINE"
            timeSeriesQuery = {
              timeSeriesFilter = {
                filter = t.filter
                aggregation = {
                  alignmentPeriod    = "60s"
                  perSeriesAligner   = t.aligner
                  crossSeriesReducer = t.reducer
                  groupByFields      = t.group
                }
              }
            }
          }]
        }
      }]
    }
  })
}
