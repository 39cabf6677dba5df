"""Test harness: a real PostgreSQL for the whole run, and the real functions-framework apps.

With no DATABASE_URL the run starts its own embedded PostgreSQL (pgserver) in a temporary
directory; with DATABASE_URL (a superuser URL to any server) it uses that server. Either way it
creates a fresh database for the run, migrates it as the owner and connects the functions as the
restricted application role, exactly as deployed.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
os.environ["EARNPAY_ENV"] = "test"
# The tests play Cloud Functions' front end: one trusted proxy hop, so each test's X-Forwarded-For is
# the caller's address (tests/shared/test_client_ip.py covers the other layouts).
os.environ["TRUSTED_PROXY_HOPS"] = "1"
# A fresh local key-encryption key per run (payout details), so tests never touch .data/local-kek.
os.environ["LOCAL_KEK_BASE64"] = __import__("base64").b64encode(secrets.token_bytes(32)).decode()
os.environ.pop("K_SERVICE", None)

pytest_plugins = [
    "tests.fixtures.pubsub",
    "tests.fixtures.gcs",
    "tests.fixtures.paypal_standin",
    "tests.fixtures.replica",
    "tests.fixtures.mail",
    "tests.fixtures.migrations",  # scratch (a fresh empty database) and old_release (one migrated to an older release)
    "tests.fixtures.secret_manager",  # the Secret Manager REST stand-in
]


def _server_url() -> tuple[str, bool]:
    given = os.environ.get("EARNPAY_TEST_SERVER_URL") or os.environ.get("DATABASE_URL")
    if given:
        return given, False
    from shared.embedded import socket_url, start

    pgdata = Path(tempfile.mkdtemp(prefix="earnpay-pg-")) / "data"
    start(pgdata, cleanup_mode="delete")
    return socket_url(pgdata), True


_SERVER_URL, _EMBEDDED = _server_url()
os.environ["EARNPAY_TEST_SERVER_URL"] = _SERVER_URL
TEST_DB = f"earnpay_test_{uuid.uuid4().hex[:8]}"


def _configure_environment() -> None:
    from shared.db import APP_ROLE, with_database

    admin = with_database(_SERVER_URL, TEST_DB)
    if _EMBEDDED:
        app = with_database(_SERVER_URL, TEST_DB, user=APP_ROLE)
    else:
        password = secrets.token_hex(16)
        os.environ["EARNPAY_TEST_APP_PASSWORD"] = password
        app = with_database(_SERVER_URL, TEST_DB, user=f"{APP_ROLE}:{password}")
    os.environ["MIGRATE_DATABASE_URL"] = admin
    os.environ["DATABASE_URL"] = app


_configure_environment()


@pytest.fixture(scope="session", autouse=True)
def database() -> Iterator[str]:
    """The migrated test database (created once per run); yields the owner's URL."""
    from shared.config import get_settings
    from shared.db import APP_ROLE, connect_url, reset_pools
    from shared.dbsetup import create_database_if_missing, prepare

    get_settings.cache_clear()
    create_database_if_missing(_SERVER_URL, TEST_DB)
    prepare(get_settings())
    raw = connect_url(os.environ["MIGRATE_DATABASE_URL"])
    raw.autocommit = True
    password = os.environ.get("EARNPAY_TEST_APP_PASSWORD")
    raw.execute_simple(f"ALTER ROLE {APP_ROLE} LOGIN" + (f" PASSWORD '{password}'" if password else ""))
    raw.close()
    reset_pools()
    yield os.environ["MIGRATE_DATABASE_URL"]
    reset_pools()


@pytest.fixture(autouse=True)
def _settings_reread_after_each_test() -> Iterator[None]:
    """Tests that change settings set the environment (monkeypatch) and call ``get_settings.cache_clear()``.

    This clears the cache once more after each test: autouse, so it is torn down after ``monkeypatch`` has
    restored the environment, and no test can leave its settings behind for the next one.
    """
    from shared.config import get_settings

    yield
    get_settings.cache_clear()


@pytest.fixture()
def owner_conn(database: str) -> Iterator[object]:
    """A connection as the schema owner (for assertions that look past the app role's grants)."""
    from shared.config import get_settings
    from shared.db import Conn, _session_setup, connect_url

    raw = _session_setup(connect_url(database), get_settings())
    try:
        yield Conn(raw, get_settings())
    finally:
        raw.close()


class WithEventToken:
    """The dispatcher as the local Pub/Sub and Eventarc stand-ins reach it: every request carries the
    run's event token (the test harness delivers events in their place). ``.dispatcher`` is the bare one."""

    def __init__(self, dispatcher: Any) -> None:
        self.dispatcher = dispatcher

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        environ.setdefault("HTTP_X_EARNPAY_EVENT_TOKEN", self.dispatcher.event_token)
        return self.dispatcher(environ, start_response)


@pytest.fixture(scope="session")
def apps(database: str) -> object:
    """The dispatcher over every functions-framework app of main.py (as ``serve`` runs it), with the
    event token that the local platform gives its Pub/Sub and Eventarc stand-ins."""
    from shared.localserver import make_app

    return WithEventToken(make_app(event_token=secrets.token_urlsafe(16)))


@pytest.fixture()
def client(apps: object) -> object:
    from werkzeug.test import Client

    return Client(apps)  # type: ignore[arg-type]


@pytest.fixture()
def api(client: object) -> object:
    from tests.helpers import Api

    return Api(client)  # type: ignore[arg-type]


@pytest.fixture()
def immediate_clearing(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Credits available at once (every CLEARING_* period 0), for tests of other rules than clearing.

    Clearing itself is tested with the real periods in tests/ledger/test_clearing.py.
    """
    from shared.config import get_settings

    for name in ("CLEARING_VIDEO_REWARD_HOURS", "CLEARING_BONUS_HOURS", "CLEARING_REFERRAL_HOURS", "CLEARING_ADJUSTMENT_HOURS"):
        monkeypatch.setenv(name, "0")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()
