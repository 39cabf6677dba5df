"""Retired offerwall secrets are disabled in Secret Manager (maintenance task partner_secrets_disable):
once a rotation's overlap is over, exactly once, and not while the overlap lasts."""

from __future__ import annotations

from typing import Any

import pytest

from functions.maintenance.service import run_task
from functions.partners import service
from shared import secrets
from shared.config import get_settings
from shared.db import Conn, Query
from tests.fixtures.secret_manager import SecretManagerStandIn
from tests.helpers import Api, User
from tests.partners.support import new_partner, offerwall_query, set_secret

V1, V2, V3 = bytes(range(1, 33)), bytes(range(33, 65)), bytes(range(65, 97))
ROWS = Query(
    "t_partner_secret_rows",
    """SELECT version, secret_version, retires_at <= now() AS retired, disabled_at
         FROM partner_secrets WHERE partner_id = :p ORDER BY version""",
    prepared=False,
)


def _three_versions(api: Api, admin: User) -> str:
    """v1 retired at once by v2 (no overlap), v2 still verifying for an hour after v3."""
    pid = new_partner(api, admin, "offerwall")
    set_secret(api, admin, pid, V1)
    set_secret(api, admin, pid, V2, overlap_hours=0)
    set_secret(api, admin, pid, V3, overlap_hours=1)
    return pid


def _disable() -> dict[str, Any]:
    return run_task("partner_secrets_disable", {"limit": 10_000})["result"]


def test_a_retired_version_is_disabled_once_and_the_overlap_is_left_alone(
    api: Api, admin: User, sm: SecretManagerStandIn, owner_conn: Conn
) -> None:
    pid = _three_versions(api, admin)
    v1, v2, v3 = (r["secret_version"] for r in owner_conn.all(ROWS, p=pid))
    assert _disable()["disabled"] >= 1
    assert v1 in sm.disabled and v2 not in sm.disabled and v3 not in sm.disabled
    rows = owner_conn.all(ROWS, p=pid)
    assert [(r["retired"] is True, r["disabled_at"] is not None) for r in rows] == [(True, True), (False, False), (False, False)]
    first = rows[0]["disabled_at"]
    with pytest.raises(secrets.SecretNotFound):  # nobody reads it from Secret Manager any more
        service.secret_store().access(pid, v1)
    # the versions still verifying still verify
    user = api.signup()
    for i, secret in enumerate((V2, V3)):
        query = offerwall_query(secret, user_id=user.id, transaction_id=f"t{i}", amount=1)
        resp = api.call("GET", f"/partner_callbacks/offerwall/{pid}?{query}")
        assert resp.status_code == 200, resp.get_data(as_text=True)

    sm.disable_requests.clear()
    _disable()
    assert v1 not in sm.disable_requests  # recorded: never asked again
    assert owner_conn.all(ROWS, p=pid)[0]["disabled_at"] == first


def test_secret_manager_down_leaves_the_version_for_the_next_run(api: Api, admin: User, sm: SecretManagerStandIn, owner_conn: Conn) -> None:
    pid = _three_versions(api, admin)
    v1 = owner_conn.all(ROWS, p=pid)[0]["secret_version"]
    sm.fail_next(503)
    with pytest.raises(secrets.SecretUnavailable):  # the task fails, so Pub/Sub delivers it again
        _disable()
    assert v1 not in sm.disabled and owner_conn.all(ROWS, p=pid)[0]["disabled_at"] is None
    _disable()
    assert v1 in sm.disabled and owner_conn.all(ROWS, p=pid)[0]["disabled_at"] is not None


def test_a_process_on_the_database_store_does_not_pretend(
    api: Api, admin: User, sm: SecretManagerStandIn, owner_conn: Conn, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = _three_versions(api, admin)
    monkeypatch.setenv("SECRET_STORE", "database")
    get_settings.cache_clear()
    secrets.reset()
    result = _disable()
    assert result["disabled"] == 0 and "database store" in result["skipped"]
    assert owner_conn.all(ROWS, p=pid)[0]["disabled_at"] is None and not sm.disable_requests
