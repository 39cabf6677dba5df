"""Secrets the application itself creates and rotates at run time (offerwall signing secrets), in one of two stores.

Both stores speak one interface, ``SecretStore``: ``add_version(name, value)`` keeps a new version of the
secret ``name`` and returns a *reference* for the database to hold; ``access(name, reference)`` gives the
value back. Which store a process uses is configuration (``SECRET_STORE``, ``shared.config.Settings``):

* ``secret_manager`` (deployed): Google Secret Manager through its official client
  (``google-cloud-secret-manager``, REST transport). The secret ``name`` lives in the secret
  ``<prefix><name>`` (created on its first version), and the reference is the version's resource name,
  ``projects/P/secrets/S/versions/N``: the database never holds the secret, and IAM (infra/partners.tf)
  grants access by the prefix. ``SECRET_MANAGER_ENDPOINT`` points the client at another endpoint with
  anonymous credentials (tests: tests/fixtures/secret_manager.py); refused when deployed.
* ``database`` (local, tests): the value sealed with ``shared.crypto`` (the payout-details KEK) bound to
  ``<aad_prefix><name>``; the reference is the envelope's JSON. Refused when deployed.

Errors: ``SecretUnavailable`` (HTTP 503, retry later) when the store cannot be reached or refuses us,
``SecretNotFound`` when the reference names nothing (a deleted/disabled version).
``disable(name, reference)`` retires a version for good: Secret Manager disables it (the maintenance
task ``partner_secrets_disable`` calls it once a rotation's overlap is over); a database envelope has
nothing outside to disable.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from typing import TYPE_CHECKING, Any, Protocol

from shared import crypto
from shared import error_codes as codes
from shared.config import ConfigError, Settings, get_settings
from shared.errors import ServiceUnavailable

if TYPE_CHECKING:  # the client is imported only by the store that uses it
    from google.cloud.secretmanager_v1 import SecretManagerServiceClient

_VERSION_NAME = re.compile(r"^projects/[^/]{1,100}/secrets/[A-Za-z0-9_-]{1,255}/versions/[0-9]{1,12}$")


class SecretUnavailable(ServiceUnavailable):
    """The secret store could not be reached or refused the call: safe to retry later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, code=codes.SECRET_STORE_UNAVAILABLE)


class SecretNotFound(Exception):
    """The reference names no readable secret version (destroyed, disabled, or not ours)."""


class SecretStore(Protocol):
    kind: str  # "database" | "secret_manager": recorded beside each reference

    def add_version(self, name: str, value: bytes) -> str:
        """Keeps ``value`` as the newest version of secret ``name``; returns the reference to store."""
        ...

    def access(self, name: str, reference: str) -> bytes:
        """The value a reference of secret ``name`` stands for."""
        ...

    def disable(self, name: str, reference: str) -> None:
        """Makes a version no longer readable (a retired one); no error if it already is or is gone."""
        ...


class DatabaseStore:
    """The value encrypted under the payout-details KEK; the reference *is* the envelope (kept in the database)."""

    kind = "database"

    def __init__(self, aad_prefix: str) -> None:
        self.aad_prefix = aad_prefix

    def add_version(self, name: str, value: bytes) -> str:
        return json.dumps(crypto.encrypt_json({"secret_hex": value.hex()}, self.aad_prefix + name))

    def access(self, name: str, reference: str) -> bytes:
        try:
            return bytes.fromhex(crypto.decrypt_json(json.loads(reference), self.aad_prefix + name)["secret_hex"])
        except (crypto.DecryptionError, ValueError, KeyError) as exc:
            raise SecretNotFound(f"the stored envelope of {name} does not open: {exc}") from exc

    def disable(self, name: str, reference: str) -> None:
        """Nothing outside the database holds an envelope: retiring it (``retires_at``) is all there is."""


class SecretManagerStore:
    """Google Secret Manager: one secret per name (``<prefix><name>``), one version per rotation."""

    kind = "secret_manager"

    def __init__(
        self,
        project: str,
        prefix: str,
        *,
        location: str | None = None,
        endpoint: str | None = None,
        timeout_s: float = 5.0,
        client: SecretManagerServiceClient | None = None,
    ) -> None:
        self.project, self.prefix, self.location, self.timeout_s = project, prefix, location, timeout_s
        self.endpoint = endpoint
        self._client = client
        self._lock = threading.Lock()

    def secret_path(self, name: str) -> str:
        return f"projects/{self.project}/secrets/{self.prefix}{name}"

    def _get_client(self) -> SecretManagerServiceClient:
        with self._lock:
            if self._client is None:
                # Imported lazily: only the processes that use Secret Manager load the client (and look up credentials).
                from google.cloud.secretmanager_v1 import SecretManagerServiceClient

                if self.endpoint:
                    from google.auth.credentials import AnonymousCredentials

                    self._client = SecretManagerServiceClient(
                        transport="rest", client_options={"api_endpoint": self.endpoint}, credentials=AnonymousCredentials()
                    )
                else:
                    self._client = SecretManagerServiceClient(transport="rest")
            return self._client

    def add_version(self, name: str, value: bytes) -> str:
        from google.api_core import exceptions as gexc

        client = self._get_client()
        parent = self.secret_path(name)
        payload = {"data": value, "data_crc32c": _crc32c(value)}
        try:
            try:
                version = client.add_secret_version(request={"parent": parent, "payload": payload}, timeout=self.timeout_s)
            except gexc.NotFound:  # the first version of this name: create its secret, then add
                self._create(client, name)
                version = client.add_secret_version(request={"parent": parent, "payload": payload}, timeout=self.timeout_s)
        except gexc.GoogleAPIError as exc:
            raise SecretUnavailable(f"Secret Manager refused to add a version of {parent}: {type(exc).__name__}") from exc
        return str(version.name)

    def _create(self, client: SecretManagerServiceClient, name: str) -> None:
        from google.api_core import exceptions as gexc

        replication: dict[str, Any] = {"user_managed": {"replicas": [{"location": self.location}]}} if self.location else {"automatic": {}}
        with contextlib.suppress(gexc.AlreadyExists):  # another instance created it a moment ago
            client.create_secret(
                request={
                    "parent": f"projects/{self.project}",
                    "secret_id": f"{self.prefix}{name}",
                    "secret": {"replication": replication, "labels": {"created_by": "earnpay"}},
                },
                timeout=self.timeout_s,
            )

    def _check_version(self, name: str, reference: str) -> None:
        """``SecretNotFound`` unless ``reference`` names a version of this store's secret ``name``."""
        if not _VERSION_NAME.match(reference) or not reference.startswith(self.secret_path(name) + "/versions/"):
            raise SecretNotFound(f"{reference!r} is not a version of {self.secret_path(name)}")

    def access(self, name: str, reference: str) -> bytes:
        from google.api_core import exceptions as gexc

        self._check_version(name, reference)
        try:
            response = self._get_client().access_secret_version(request={"name": reference}, timeout=self.timeout_s, retry=None)
        except (gexc.NotFound, gexc.BadRequest) as exc:  # destroyed, or disabled (FAILED_PRECONDITION arrives as HTTP 400)
            raise SecretNotFound(f"{reference} cannot be read: {exc.message}") from exc
        except gexc.GoogleAPIError as exc:
            raise SecretUnavailable(f"Secret Manager could not give {reference}: {type(exc).__name__}") from exc
        data = bytes(response.payload.data)
        if response.payload.data_crc32c and response.payload.data_crc32c != _crc32c(data):
            raise SecretUnavailable(f"{reference} arrived corrupted (CRC32C mismatch)")
        return data

    def disable(self, name: str, reference: str) -> None:
        from google.api_core import exceptions as gexc

        self._check_version(name, reference)
        try:
            self._get_client().disable_secret_version(request={"name": reference}, timeout=self.timeout_s)
        except gexc.NotFound:  # destroyed (or its secret deleted): nothing left to read
            return
        except gexc.GoogleAPIError as exc:
            raise SecretUnavailable(f"Secret Manager could not disable {reference}: {type(exc).__name__}") from exc


def _crc32c(data: bytes) -> int:
    import google_crc32c

    return int.from_bytes(google_crc32c.Checksum(data).digest(), "big")


# --- the configured store ------------------------------------------------------------------------------
_stores: dict[tuple[Any, ...], SecretStore] = {}
_stores_lock = threading.Lock()


def store_kind(settings: Settings | None = None) -> str:
    """The configured store: ``SECRET_STORE``, else secret_manager when deployed and database elsewhere."""
    settings = settings or get_settings()
    return settings.secret_store or ("secret_manager" if settings.is_production else "database")


def get_store(*, aad_prefix: str, prefix: str) -> SecretStore:
    """The configured store for one family of secrets: ``aad_prefix`` binds database envelopes to it,
    ``prefix`` names its Secret Manager secrets. One instance per configuration (its client is reused)."""
    settings = get_settings()
    kind = store_kind(settings)
    if settings.is_production and kind == "database":
        raise ConfigError("SECRET_STORE=database is for development and tests: deployed functions keep secrets in Secret Manager")
    if settings.is_production and settings.secret_manager_endpoint:
        raise ConfigError("SECRET_MANAGER_ENDPOINT (anonymous credentials) is for tests and is refused when deployed")
    key = (kind, aad_prefix, prefix, settings.gcp_project, settings.secret_manager_endpoint, settings.secret_manager_location)
    with _stores_lock:
        found = _stores.get(key)
        if found is None:
            if kind == "database":
                found = DatabaseStore(aad_prefix)
            else:
                found = SecretManagerStore(
                    settings.gcp_project,
                    prefix,
                    location=settings.secret_manager_location,
                    endpoint=settings.secret_manager_endpoint,
                    timeout_s=settings.secret_manager_timeout_s,
                )
            _stores[key] = found
        return found


def reset() -> None:
    """Forgets the stores built so far (tests change the configuration)."""
    with _stores_lock:
        _stores.clear()
