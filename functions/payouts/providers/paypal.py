"""PayPal Payouts API (v1) adapter: one payout per PayPal batch, keyed by our payout id.

Written against PayPal's published API (developer.paypal.com/api/payments.payouts-batch/v1):

* ``POST /v1/oauth2/token`` (HTTP Basic client id:secret, form ``grant_type=client_credentials``) gives a
  bearer token; it is cached until shortly before ``expires_in`` and fetched again after a 401.
* ``POST /v1/payments/payouts`` with ``sender_batch_header.sender_batch_id`` = our payout id (also the
  ``PayPal-Request-Id`` header and the item's ``sender_item_id``). PayPal "does not process duplicate
  payouts": a ``sender_batch_id`` used in the last 30 days is rejected with an error that names the
  duplicate and links to the original batch, and "if you receive an HTTP 5nn status code, you can safely
  retry the request with the same sender_batch_id". A duplicate therefore means "already submitted": we
  follow the link and report the original batch's state instead of failing.
* ``GET /v1/payments/payouts/{payout_batch_id}`` for the state.

Status mapping (item ``transaction_status`` wins over ``batch_status``; one item per batch):

=====================================  =========  ===============================================
PayPal                                 ours       why
=====================================  =========  ===============================================
SUCCESS                                paid       money is in the receiver's account
PENDING, PROCESSING (batch), ONHOLD    pending    not final yet
UNCLAIMED                              pending    money left our balance but the receiver has no
                                                  account yet; PayPal returns it after 30 days
                                                  (then RETURNED): not paid, not failed either
FAILED, BLOCKED, DENIED, CANCELED      failed     money did not move
RETURNED, REFUNDED, REVERSED           failed     money came back to our PayPal balance
=====================================  =========  ===============================================

Errors: timeouts, connection errors, 5xx, 429 (and INSUFFICIENT_FUNDS in our own PayPal balance) raise
``ProviderTransientError``; bad credentials or a 403 raise ``ProviderConfigError`` (a transient error for
callers: keep the hold, alert an operator); other 4xx are definitive failures. Bank accounts are not a
PayPal Payouts recipient type: they fail with ``unsupported_method`` without calling PayPal.
Amounts are built from integer minor units as decimal strings; no float is ever involved.
"""

from __future__ import annotations

import base64
import copy
import http.client
import ipaddress
import json
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from functions.payouts.providers.base import (
    PayoutInstruction,
    PayoutNotFound,
    ProviderConfigError,
    ProviderResult,
    ProviderTransientError,
    format_amount,
)
from shared.crypto import mask_email
from shared.logs import get_logger

log = get_logger(__name__)

SANDBOX_URL = "https://api-m.sandbox.paypal.com"
LIVE_URL = "https://api-m.paypal.com"
DEFAULT_TIMEOUT_S = 20.0
TOKEN_REFRESH_MARGIN_S = 300.0

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

_PAID = frozenset({"SUCCESS"})
_PENDING = frozenset({"PENDING", "PROCESSING", "UNCLAIMED", "ONHOLD", "NEW"})
_FAILED = frozenset({"FAILED", "BLOCKED", "DENIED", "CANCELED", "RETURNED", "REFUNDED", "REVERSED"})
# Error names that say "try again later", whatever the HTTP status.
_TRANSIENT_NAMES = frozenset({"INTERNAL_ERROR", "INSUFFICIENT_FUNDS", "RATE_LIMIT_REACHED", "SERVICE_UNAVAILABLE"})
_CONFIG_NAMES = frozenset({"AUTHORIZATION_ERROR", "AUTHENTICATION_FAILURE", "PERMISSION_DENIED", "NOT_AUTHORIZED"})


class PayPalProvider:
    """PayPal Payouts v1. Thread-safe: the token cache is locked; each call uses its own HTTP connection."""

    name = "paypal"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        base_url: str = SANDBOX_URL,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        confirm_after_create: bool = True,
        email_subject: str = "You have a payout from EarnPay",
    ) -> None:
        if not client_id or not client_secret:
            raise ProviderConfigError("PayPal client id and secret are required")
        self._client_id = client_id
        self._client_secret = client_secret
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.confirm_after_create = confirm_after_create
        self.email_subject = email_subject
        self._token: str | None = None
        self._token_expires = 0.0
        self._token_lock = threading.Lock()
        host = urllib.parse.urlsplit(self.base_url).hostname or ""
        # A local stand-in must never be reached through a proxy from the environment.
        handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})] if _is_loopback(host) else []
        self._opener = urllib.request.build_opener(*handlers)

    def __repr__(self) -> str:  # never show credentials
        return f"PayPalProvider(base_url={self.base_url!r})"

    # --- the interface ---------------------------------------------------------------------------------
    def submit(self, payout: PayoutInstruction) -> ProviderResult:
        if payout.method_type != "paypal":
            return ProviderResult(
                "failed", None, "unsupported_method", "PayPal Payouts cannot pay a bank account", {"method_type": payout.method_type}
            )
        email = str(payout.destination.get("email", "")).strip()
        if not _EMAIL.match(email):
            return ProviderResult("failed", None, "invalid_destination", "payout method has no valid PayPal email", {})
        try:
            value = format_amount(payout.amount_cents, payout.currency)
        except ValueError as exc:
            return ProviderResult("failed", None, "invalid_amount", str(exc), {})
        body = {
            "sender_batch_header": {
                "sender_batch_id": payout.payout_id,
                "recipient_type": "EMAIL",
                "email_subject": self.email_subject,
            },
            "items": [
                {
                    "recipient_type": "EMAIL",
                    "amount": {"value": value, "currency": payout.currency},
                    "receiver": email,
                    "note": payout.note[:1000],
                    "sender_item_id": payout.payout_id,
                }
            ],
        }
        status, data = self._api("POST", "/v1/payments/payouts", body, request_id=payout.payout_id)
        if status in (200, 201):
            result = self._map(data, payout.payout_id)
            batch_id = result.provider_reference
            if self.confirm_after_create and result.status == "pending" and batch_id:
                try:  # PayPal usually settles a single item within moments; look once, else stay pending.
                    return self.get_status(payout.payout_id, batch_id)
                except ProviderTransientError:
                    return result
            return result
        if _is_duplicate(data):
            return self._already_submitted(payout.payout_id, data)
        return self._failure(status, data)

    def get_status(self, payout_id: str, provider_reference: str | None) -> ProviderResult:
        if not provider_reference:
            # Payouts v1 cannot be searched by sender_batch_id; a submit with the same id finds it instead.
            raise PayoutNotFound("PayPal batches are looked up by payout_batch_id; resubmit with the same payout id to find it")
        ref = urllib.parse.quote(provider_reference, safe="")
        status, data = self._api("GET", f"/v1/payments/payouts/{ref}", None)
        if status == 404:
            raise PayoutNotFound(f"PayPal has no payout batch {provider_reference}")
        if status != 200:
            raise ProviderTransientError(f"PayPal status lookup answered HTTP {status}", status_code=status)
        return self._map(data, payout_id)

    # --- duplicate handling --------------------------------------------------------------------------
    def _already_submitted(self, payout_id: str, error: dict[str, Any]) -> ProviderResult:
        href = _duplicate_link(error)
        batch_id = href.rstrip("/").rsplit("/", 1)[-1] if href else None
        log.warning("PayPal reports payout already submitted; looking it up", extra={"payout_id": payout_id, "payout_batch_id": batch_id})
        if batch_id:
            return self.get_status(payout_id, batch_id)
        # No link to follow: money may have moved, so never "failed". Someone must reconcile by hand.
        log.error("PayPal duplicate without a link to the original batch", extra={"payout_id": payout_id})
        return ProviderResult("pending", None, raw={"duplicate": True, "error": _redact(error)})

    # --- mapping ---------------------------------------------------------------------------------------
    def _map(self, data: dict[str, Any], payout_id: str) -> ProviderResult:
        header = data.get("batch_header") or {}
        batch_id = header.get("payout_batch_id")
        batch_status = str(header.get("batch_status", "")).upper()
        items = data.get("items") or []
        item = next((i for i in items if (i.get("payout_item") or {}).get("sender_item_id") == payout_id), items[0] if items else None)
        raw = _redact(data)
        if item is not None:
            state = str(item.get("transaction_status", "")).upper()
            errors = item.get("errors") or {}
            if state in _PAID:
                return ProviderResult("paid", batch_id, raw=raw)
            if state in _FAILED:
                code = str(errors.get("name") or f"paypal_{state}").lower()
                return ProviderResult("failed", batch_id, code, str(errors.get("message") or f"PayPal item {state}"), raw)
            if state in _PENDING or not state:
                return ProviderResult("pending", batch_id, raw=raw)
            log.warning("unknown PayPal item status treated as pending", extra={"status": state, "payout_id": payout_id})
            return ProviderResult("pending", batch_id, raw=raw)
        if batch_status in ("DENIED", "CANCELED"):
            return ProviderResult("failed", batch_id, f"paypal_{batch_status.lower()}", f"PayPal batch {batch_status}", raw)
        return ProviderResult("pending", batch_id, raw=raw)

    def _failure(self, status: int, data: dict[str, Any]) -> ProviderResult:
        name = str(data.get("name") or "paypal_error").upper()
        details = data.get("details") or []
        issue = next((str(d.get("issue")) for d in details if isinstance(d, dict) and d.get("issue")), None)
        message = issue or str(data.get("message") or f"PayPal answered HTTP {status}")
        if name in _TRANSIENT_NAMES:
            raise ProviderTransientError(f"PayPal {name}: {message}", status_code=status)
        if status in (401, 403, 404, 405) or name in _CONFIG_NAMES:
            raise ProviderConfigError(f"PayPal refused our credentials or permissions ({status} {name}): {message}")
        return ProviderResult("failed", None, name.lower(), message[:500], _redact(data))

    # --- HTTP ------------------------------------------------------------------------------------------
    def _get_token(self, *, force: bool = False) -> str:
        with self._token_lock:
            now = time.monotonic()
            if self._token and not force and now < self._token_expires:
                return self._token
            basic = base64.b64encode(f"{self._client_id}:{self._client_secret}".encode()).decode()
            status, data = self._send(
                "POST",
                "/v1/oauth2/token",
                b"grant_type=client_credentials",
                {"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            )
            if status in (400, 401, 403):
                raise ProviderConfigError(f"PayPal rejected the client credentials (HTTP {status} {data.get('error', '')})")
            token = data.get("access_token")
            if status != 200 or not isinstance(token, str):
                raise ProviderTransientError(f"PayPal token endpoint answered HTTP {status}", status_code=status)
            lifetime = float(data.get("expires_in") or 0)
            self._token = token
            self._token_expires = now + max(0.0, lifetime - min(TOKEN_REFRESH_MARGIN_S, lifetime / 10))
            return token

    def _api(self, method: str, path: str, body: dict[str, Any] | None, *, request_id: str | None = None) -> tuple[int, dict[str, Any]]:
        payload = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {self._get_token(force=attempt == 2)}", "Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = "application/json"
            if request_id:
                headers["PayPal-Request-Id"] = request_id
            status, data = self._send(method, path, payload, headers)
            if status != 401 or attempt == 2:
                return status, data
            with self._token_lock:  # token expired or revoked early: fetch a new one once
                self._token = None
        raise AssertionError("unreachable")

    def _send(self, method: str, path: str, payload: bytes | None, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(self.base_url + path, data=payload, headers=headers, method=method)  # noqa: S310  # https base URL from settings (or the local stand-in), never user input
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status = exc.code
            try:
                text = exc.read()
            except (OSError, http.client.HTTPException):
                text = b""
            finally:
                exc.close()
            if status == 429 or status >= 500:
                raise ProviderTransientError(
                    f"PayPal {method} {path} answered HTTP {status}",
                    status_code=status,
                    retry_after_s=_retry_after(exc.headers.get("Retry-After") if exc.headers else None),
                ) from None
        except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, refused and reset connections
            raise ProviderTransientError(f"PayPal {method} failed: {type(exc).__name__}") from None
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            if 200 <= status < 300:
                raise ProviderTransientError(f"PayPal answered HTTP {status} with a body that is not JSON", status_code=status) from None
            data = {}
        return status, data if isinstance(data, dict) else {}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _is_duplicate(error: dict[str, Any]) -> bool:
    """PayPal's answer to a reused sender_batch_id: USER_BUSINESS_ERROR whose detail names SENDER_BATCH_ID as a
    duplicate (seen in the wild as ``{"field": "SENDER_BATCH_ID", "issue": "Duplicate batch request"}``,
    paypal/PayPal-Ruby-SDK#120), or DUPLICATE_REQUEST_ID (PayPal's generic idempotency error)."""
    if str(error.get("name", "")).upper() == "DUPLICATE_REQUEST_ID":
        return True
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        field = str(detail.get("field", "")).upper()
        issue = str(detail.get("issue", "")).upper()
        if issue == "DUPLICATE_REQUEST_ID" or ("SENDER_BATCH_ID" in field and ("DUPLICATE" in issue or "ALREADY" in issue)):
            return True
    return False


def _duplicate_link(error: dict[str, Any]) -> str | None:
    """The HATEOAS link to the original batch, from the error's details or top-level links."""
    links: list[Any] = []
    for detail in error.get("details") or []:
        if isinstance(detail, dict):
            links.extend(detail.get("link") or detail.get("links") or [])
    links.extend(error.get("links") or [])
    for link in links:
        href = link.get("href") if isinstance(link, dict) else None
        if isinstance(href, str) and "/v1/payments/payouts/" in href:
            return href
    return None


def _redact(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a PayPal answer with receivers masked: safe to store and to log."""
    clean = copy.deepcopy(data)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "receiver" and isinstance(value, str):
                    node[key] = mask_email(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(clean)
    return clean
