## The staff console (console/): a static site in the "console" bucket (storage.tf) behind Cloud
## CDN on its own HTTPS load balancer and domain. The pipeline (cloudbuild.yaml, step console)
## uploads the Vite build: assets/ with content-hashed names, cached for a year and immutable;
## index.html with no-cache, so a release is live on the next load. config.json, written here,
## tells the console where the admin and auth functions are.
##
## The bucket stays private (public access prevention enforced): only Cloud CDN's fill service
## account reads it. The admin and auth functions answer CORS for this one origin only
## (CONSOLE_ORIGINS, functions.tf). The staff token lives in the page's memory, never in storage.

locals {
  console_origin = "https://${var.console_domain}"

  ## Scripts and styles from the console's own origin only (no inline script, no eval), API calls
  ## to the two functions it uses, document previews from signed Cloud Storage URLs.
  console_csp = join("; ", [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: https://storage.googleapis.com",
    "frame-src https://storage.googleapis.com",
    "connect-src 'self' ${google_cloudfunctions2_function.fn["admin"].url} ${google_cloudfunctions2_function.fn["auth"].url}",
    "font-src 'self'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ])
}

## Cloud CDN fills its cache from the private bucket as its own service agent.
resource "google_storage_bucket_iam_member" "console_cdn_fill" {
  bucket = google_storage_bucket.this["console"].name
  role   = "roles/storage.objectViewer"
  member = "serviceAccount:service-${data.google_project.this.number}@cloud-cdn-fill.iam.gserviceaccount.com"
}

resource "google_storage_bucket_object" "console_config" {
  bucket        = google_storage_bucket.this["console"].name
  name          = "config.json"
  content_type  = "application/json"
  cache_control = "no-cache"
  content = jsonencode({
    api = {
      admin = google_cloudfunctions2_function.fn["admin"].url
      auth  = google_cloudfunctions2_function.fn["auth"].url
    }
  })
}

resource "google_compute_backend_bucket" "console" {
  name        = "earnpay-${var.env}-console"
  description = "The staff console's static files, through Cloud CDN."
  bucket_name = google_storage_bucket.this["console"].name
  enable_cdn  = true

  cdn_policy {
    ## The objects' own Cache-Control decides: a year for hashed assets, revalidate index.html
    ## and config.json on every load.
    cache_mode                   = "USE_ORIGIN_HEADERS"
    serve_while_stale            = 0
    request_coalescing           = true
    signed_url_cache_max_age_sec = 0
  }

  custom_response_headers = [
    "Content-Security-Policy: ${local.console_csp}",
    "Strict-Transport-Security: max-age=31536000; includeSubDomains",
    "X-Content-Type-Options: nosniff",
    "X-Frame-Options: DENY",
    "Referrer-Policy: no-referrer",
  ]
}

resource "google_compute_global_address" "console" {
  name = "earnpay-${var.env}-console"
}

resource "google_compute_managed_ssl_certificate" "console" {
  name = "earnpay-${var.env}-console"

  managed {
    domains = [var.console_domain]
  }
}

resource "google_compute_ssl_policy" "console" {
  name            = "earnpay-${var.env}-console"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_url_map" "console" {
  name            = "earnpay-${var.env}-console"
  default_service = google_compute_backend_bucket.console.id
}

resource "google_compute_target_https_proxy" "console" {
  name             = "earnpay-${var.env}-console"
  url_map          = google_compute_url_map.console.id
  ssl_certificates = [google_compute_managed_ssl_certificate.console.id]
  ssl_policy       = google_compute_ssl_policy.console.id
}

resource "google_compute_global_forwarding_rule" "console" {
  name                  = "earnpay-${var.env}-console"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  target                = google_compute_target_https_proxy.console.id
  ip_address            = google_compute_global_address.console.address
  port_range            = "443"
}

## Plain HTTP only redirects to HTTPS.
resource "google_compute_url_map" "console_http_redirect" {
  name = "earnpay-${var.env}-console-http"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "console_http_redirect" {
  name    = "earnpay-${var.env}-console-http"
  url_map = google_compute_url_map.console_http_redirect.id
}

resource "google_compute_global_forwarding_rule" "console_http_redirect" {
  name                  = "earnpay-${var.env}-console-http"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  target                = google_compute_target_http_proxy.console_http_redirect.id
  ip_address            = google_compute_global_address.console.address
  port_range            = "80"
}
