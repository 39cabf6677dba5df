"""Fixtures of the partner tests: a staff admin, and the Secret Manager stand-in with this instance's
cache of resolved secrets emptied."""

from __future__ import annotations

from typing import Any

import pytest

from functions.partners import service
from tests.fixtures.secret_manager import SecretManagerStandIn
from tests.helpers import Api, User


@pytest.fixture()
def admin(api: Api, owner_conn: Any) -> User:
    return api.staff(owner_conn, "admin")


@pytest.fixture()
def sm(secret_manager: SecretManagerStandIn) -> SecretManagerStandIn:
    """The Secret Manager stand-in (``secret_manager``), with no cached secrets and no disable calls seen yet."""
    service.clear_secret_cache()
    secret_manager.disable_requests.clear()
    return secret_manager
