"""Cloud Storage: a lazily created client, the bucket names, V4 signed URLs and small object helpers.

* The client is created on first use. With ``STORAGE_EMULATOR_HOST`` set (``http://host:port``) it
  talks to the emulator anonymously; otherwise it uses the function's own credentials.
* Signed URLs are V4 (``GOOG4-RSA-SHA256``). Deployed, they are signed as the function's service
  account through the IAM ``signBlob`` API (no key file exists anywhere; the account needs
  ``roles/iam.serviceAccountTokenCreator`` on itself, see infra/iam.tf). Locally and in tests they
  are signed with a service-account key generated in memory for this process, handed only to
  ``generate_signed_url`` (a storage client given a fake service account would try to fetch a token
  from Google). The emulator does not verify signatures; Google would refuse the local ones.
* Bucket names are ``get_settings().kyc_bucket`` / ``.exports_bucket`` (``KYC_BUCKET``, ``EXPORTS_BUCKET``,
  set per environment by Terraform).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import error_codes as codes
from shared.config import get_settings
from shared.errors import ServiceUnavailable
from shared.logs import get_logger

log = get_logger(__name__)

EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
# GCS's own limit on a V4 signature's lifetime is 7 days; ours are minutes.
MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600
LOCAL_SIGNER_EMAIL = "local-signer@earnpay-local.iam.gserviceaccount.com"
_TIMEOUT_S = 30.0
# Retries inside one call stop after this long (the library's default keeps trying for minutes,
# which would hang a request or an event handler through an outage; our callers retry instead).
_RETRY_BUDGET_S = 8.0


@functools.lru_cache(maxsize=1)
def _retry() -> Any:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(_RETRY_BUDGET_S)


def emulator_host() -> str | None:
    """The emulator's base URL when one is configured (scheme added when missing)."""
    # STORAGE_EMULATOR_HOST is google-cloud-storage's own variable (the library reads it too), so it is read
    # from os.environ here, at call time, rather than through shared.config.Settings.
    host = os.environ.get(EMULATOR_ENV, "").strip()
    if not host:
        return None
    return host if "://" in host else f"http://{host}"


# --- the client -----------------------------------------------------------------------------------
_lock = threading.Lock()
_client: Any = None
_client_key: str | None = None


def client() -> Any:
    """The process-wide storage client (rebuilt if ``STORAGE_EMULATOR_HOST`` changed)."""
    global _client, _client_key
    key = emulator_host() or ""
    with _lock:
        if _client is None or _client_key != key:
            from google.cloud import storage  # type: ignore[attr-defined]  # namespace package mypy cannot see

            if key:
                from google.auth.credentials import AnonymousCredentials

                _client = storage.Client(project=get_settings().gcp_project, credentials=AnonymousCredentials())
            else:
                _client = storage.Client(project=get_settings().gcp_project)
            _client_key = key
        return _client


def reset_client() -> None:
    """Drops the cached client and signer (tests switch emulators)."""
    global _client, _client_key, _iam_credentials
    with _lock:
        _client = None
        _client_key = None
        _iam_credentials = None


# --- signing --------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _local_signing_credentials() -> Any:
    """A service-account credential with an RSA key made in memory: signs URLs, never calls Google."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.oauth2 import service_account

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    info = {
        "type": "service_account",
        "project_id": "earnpay-local",
        "private_key_id": "local",
        "private_key": pem,
        "client_email": LOCAL_SIGNER_EMAIL,
        "client_id": "0",
        "token_uri": "https://oauth2.googleapis.com/token",
    }
    return service_account.Credentials.from_service_account_info(info)


_iam_credentials: Any = None


def _uses_iam_signing() -> bool:
    """Deployed and talking to real GCS: sign as the function's service account via IAM signBlob."""
    return emulator_host() is None and get_settings().is_production


def _signing_kwargs() -> dict[str, Any]:
    """The ``generate_signed_url`` arguments that choose the signer."""
    global _iam_credentials
    if not _uses_iam_signing():
        return {"credentials": _local_signing_credentials()}
    import google.auth
    from google.auth.transport.requests import Request

    with _lock:
        if _iam_credentials is None:
            _iam_credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        creds = _iam_credentials
        if not creds.valid:
            creds.refresh(Request())  # also resolves the metadata server's "default" account to its email
        email = getattr(creds, "service_account_email", None)
        token = creds.token
    if not email or email == "default" or not token:
        raise RuntimeError("signed URLs need a service-account identity (IAM signBlob); none was found")
    return {"service_account_email": email, "access_token": token}


@dataclass(frozen=True)
class SignedUpload:
    """A V4 signed PUT: the client must send exactly ``headers`` with the file as the body."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: dt.datetime


@functools.lru_cache(maxsize=1)
def _unavailable_errors() -> tuple[type[BaseException], ...]:
    """Failures of the storage service itself (not of the request): unreachable, no credentials,
    Google's 5xx and 429, timeouts."""
    import requests
    from google.api_core import exceptions as api
    from google.auth import exceptions as auth

    return (
        api.ServerError,
        api.TooManyRequests,
        api.RetryError,
        auth.DefaultCredentialsError,
        auth.TransportError,
        auth.RefreshError,
        requests.exceptions.ConnectionError,
        requests.exceptions.Timeout,
    )


def _service_call(fn: Any) -> Any:
    """Turns a storage outage into ServiceUnavailable: a 503 for HTTP callers, a retry for events."""

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except _unavailable_errors() as exc:
            log.error("cloud storage unavailable in %s: %s", fn.__name__, exc, extra={"event": "storage_unavailable"})
            raise ServiceUnavailable("file storage is unavailable; try again shortly", code=codes.STORAGE_UNAVAILABLE) from exc

    return call


def _expiry(expires_s: int) -> int:
    if not 1 <= expires_s <= MAX_SIGNED_URL_SECONDS:
        raise ValueError(f"signed URL lifetime must be 1..{MAX_SIGNED_URL_SECONDS} seconds")
    return expires_s


@_service_call
def signed_upload_url(bucket: str, object_name: str, content_type: str, max_bytes: int, expires_s: int) -> SignedUpload:
    """A V4 signed PUT URL for one object, binding its content type and a 0..max_bytes size range.

    Google refuses the upload unless the request carries the same ``Content-Type`` and
    ``x-goog-content-length-range`` headers (they are part of the signature) and its body is within
    the range.
    """
    if max_bytes < 1:
        raise ValueError("max_bytes must be positive")
    headers = {"x-goog-content-length-range": f"0,{int(max_bytes)}"}
    expires_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=_expiry(expires_s))
    blob = client().bucket(bucket).blob(object_name)
    url = blob.generate_signed_url(
        version="v4",
        expiration=dt.timedelta(seconds=expires_s),
        method="PUT",
        content_type=content_type,
        headers=dict(headers),
        **_signing_kwargs(),
    )
    return SignedUpload(url=url, method="PUT", headers={"Content-Type": content_type, **headers}, expires_at=expires_at)


@_service_call
def signed_download_url(
    bucket: str, object_name: str, expires_s: int, *, response_type: str | None = None, response_disposition: str | None = None
) -> str:
    """A V4 signed GET URL for one object (``response_*`` override the headers Google answers with)."""
    blob = client().bucket(bucket).blob(object_name)
    return str(
        blob.generate_signed_url(
            version="v4",
            expiration=dt.timedelta(seconds=_expiry(expires_s)),
            method="GET",
            response_type=response_type,
            response_disposition=response_disposition,
            **_signing_kwargs(),
        )
    )


# --- objects --------------------------------------------------------------------------------------
@_service_call
def upload_json(bucket: str, name: str, data: Any, *, if_generation_match: int | None = None) -> int:
    """Writes ``data`` as a JSON object (``if_generation_match=0``: only if absent); returns its generation."""
    blob = client().bucket(bucket).blob(name)
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    blob.upload_from_string(
        payload, content_type="application/json", if_generation_match=if_generation_match, timeout=_TIMEOUT_S, retry=_retry()
    )
    return int(blob.generation or 0)


@_service_call
def upload_bytes(bucket: str, name: str, data: bytes, content_type: str) -> int:
    """Writes raw bytes; returns the new generation."""
    blob = client().bucket(bucket).blob(name)
    # the object names we write are fresh per upload, so retrying an upload cannot clobber anything
    blob.upload_from_string(data, content_type=content_type, timeout=_TIMEOUT_S, retry=_retry())
    return int(blob.generation or 0)


@_service_call
def download_bytes(bucket: str, name: str, *, start: int | None = None, end: int | None = None) -> bytes:
    """The object's bytes (``start``/``end`` inclusive for a range); raises google NotFound when absent."""
    blob = client().bucket(bucket).blob(name)
    return bytes(blob.download_as_bytes(start=start, end=end, timeout=_TIMEOUT_S, retry=_retry()))


def read_head(bucket: str, name: str, n: int = 16) -> bytes:
    """The first ``n`` bytes of an object (to check a file's magic number without fetching it all)."""
    return download_bytes(bucket, name, start=0, end=n - 1)


@_service_call
def object_exists(bucket: str, name: str) -> bool:
    return bool(client().bucket(bucket).blob(name).exists(timeout=_TIMEOUT_S, retry=_retry()))


@_service_call
def object_metadata(bucket: str, name: str) -> dict[str, Any] | None:
    """The object resource (JSON API shape: bucket, name, contentType, size, md5Hash, generation...), or None."""
    from google.api_core.exceptions import NotFound

    blob = client().bucket(bucket).blob(name)
    try:
        blob.reload(timeout=_TIMEOUT_S, retry=_retry())
    except NotFound:
        return None
    return dict(blob._properties)


@_service_call
def delete_object(bucket: str, name: str, *, generation: int | None = None) -> bool:
    """Deletes an object (only that generation when given); False when it was already gone."""
    from google.api_core.exceptions import NotFound, PreconditionFailed

    blob = client().bucket(bucket).blob(name)
    try:
        blob.delete(if_generation_match=generation, timeout=_TIMEOUT_S, retry=_retry())
    except (NotFound, PreconditionFailed):
        return False
    return True


# --- local development and tests ------------------------------------------------------------------
def ensure_buckets(*names: str) -> None:
    """Creates the given buckets (default: KYC and exports) when missing. Emulator only."""
    if emulator_host() is None:
        raise RuntimeError("ensure_buckets is for the local emulator; Terraform owns real buckets")
    from google.api_core.exceptions import Conflict

    gcs = client()
    settings = get_settings()
    for name in names or (settings.kyc_bucket, settings.exports_bucket):
        with contextlib.suppress(Conflict):
            gcs.create_bucket(name)


@dataclass
class LocalEmulator:
    """A gcp-storage-emulator running in this process (in memory, or on disk) on ``host:port``."""

    server: Any
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        self.server.stop()


def start_emulator(host: str = "127.0.0.1", port: int = 0, *, data_dir: Path | None = None) -> LocalEmulator:
    """Starts gcp-storage-emulator (a development dependency) in a thread; port 0 picks a free one.

    In memory by default (tests); with ``data_dir`` the objects and buckets are files under it, so
    they survive a restart (the local platform, ``python main.py serve``).
    """
    import logging

    from gcp_storage_emulator.server import create_server

    logging.getLogger("gcp_storage_emulator").setLevel(logging.WARNING)
    if data_dir is None:
        server = create_server(host, port, in_memory=True)
    else:
        data_dir = Path(data_dir).expanduser().resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        server = create_server(host, port, in_memory=False, data_dir=str(data_dir))
    server.start()
    bound = port
    httpd = getattr(getattr(server, "_api", None), "_httpd", None)
    if httpd is not None:
        bound = int(httpd.server_address[1])
    if not bound:
        server.stop()
        raise RuntimeError("the storage emulator did not report its port")
    return LocalEmulator(server=server, host=host, port=bound)
