"""Reads that belong on the replica go there, against a real streaming replica; lag or failure -> the primary.

The replica is a pg_basebackup of the test database's server (tests/fixtures/replica.py). Replay is
paused to make it lag, and it is stopped to make it fail: history, export and stats then answer
from the primary, with the entry just written, and the balance is always the primary's.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from functions.earnings import service as earnings
from functions.ledger import service as ledger
from shared import db as shared_db
from shared import metrics
from shared.config import get_settings
from shared.db import Query, get_db, read_replica, reset_pools
from tests.fixtures.replica import Replica
from tests.helpers import Api, User

IN_RECOVERY = Query("t_in_recovery", "SELECT pg_is_in_recovery()", prepared=False)
AVAILABLE = Query("t_available", "SELECT available FROM balances WHERE user_id = CAST(:user_id AS uuid)", prepared=False)


@pytest.fixture()
def on_replica(replica: Replica, database: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Replica, Path]]:
    name = urlparse(database).path.lstrip("/")
    monkeypatch.setenv("REPLICA_DATABASE_URL", replica.app_url(name))
    monkeypatch.setenv("METRICS_EXPORTER", "file")
    monkeypatch.setenv("METRICS_FILE", str(tmp_path / "metrics.jsonl"))
    monkeypatch.setenv("METRICS_EXPORT_INTERVAL_S", "3600")
    get_settings.cache_clear()
    reset_pools()
    metrics.reset()
    shared_db.forget_replica_failure()
    earnings.clear_stats_cache()
    replica.wait_caught_up(database)
    yield replica, tmp_path / "metrics.jsonl"
    monkeypatch.delenv("REPLICA_DATABASE_URL")
    get_settings.cache_clear()
    reset_pools()
    metrics.reset()
    shared_db.forget_replica_failure()


def _replica_reads(path: Path) -> dict[str, int]:
    path.unlink(missing_ok=True)
    metrics.flush()
    out: dict[str, int] = {}
    for line in path.read_text().splitlines():
        point = json.loads(line)
        if point["name"] == "earnpay.db.replica.reads":
            out[point["attributes"]["outcome"]] = point["value"]
    return out


def _credit(user: User, amount: int) -> None:
    with get_db().transaction() as conn:
        ledger.post(conn, user_id=user.id, type="adjustment", amount=amount, idempotency_key=f"r-{uuid.uuid4().hex}", source="test")


def _reads(api: Api, user: User) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    history = api.get("/earnings/?limit=50", user=user)
    stats = api.get("/earnings/stats", user=user)
    export = api.get("/earnings/export", user=user)
    assert history.status_code == stats.status_code == export.status_code == 200
    return history.get_json()["items"], stats.get_json(), export.get_json()


def test_reads_go_to_the_replica_when_it_is_current(api: Api, on_replica: tuple[Replica, Path], database: str) -> None:
    replica, metrics_file = on_replica
    assert read_replica(lambda conn: conn.value(IN_RECOVERY)) is True  # the read really ran on the standby
    user = api.signup()
    _credit(user, 7_000)
    replica.wait_caught_up(database)
    items, stats, export = _reads(api, user)
    assert items[0]["amount"]["micros"] == 7_000 and export["items"][0]["amount"]["micros"] == 7_000
    assert stats["periods"]["today"]["by_type"]["adjustment"]["micros"] == 7_000
    reads = _replica_reads(metrics_file)
    assert reads.get("replica", 0) >= 4 and not reads.get("fallback_lag") and not reads.get("fallback_error"), reads


def test_a_lagging_replica_never_serves_a_stale_balance_or_history(api: Api, on_replica: tuple[Replica, Path], database: str) -> None:
    replica, metrics_file = on_replica
    user = api.signup()
    _credit(user, 1_000)
    replica.wait_caught_up(database)
    _reads(api, user)  # warm: the stats sums are now cached for this entry count
    replica.pause_replay()
    try:
        _credit(user, 2_000)  # on the primary only
        items, stats, export = _reads(api, user)
        assert [i["amount"]["micros"] for i in items[:2]] == [2_000, 1_000]
        assert export["count"] == len(export["items"]) and export["items"][0]["amount"]["micros"] == 2_000
        assert stats["periods"]["today"]["by_type"]["adjustment"]["micros"] == 3_000
        with get_db().connection() as conn:  # the balance is the primary's, never the paused replica's
            assert stats["available"]["micros"] == conn.value(AVAILABLE, user_id=user.id) and stats["entry_count"] >= 2
        reads = _replica_reads(metrics_file)
        assert reads.get("fallback_lag", 0) >= 3, reads
    finally:
        replica.resume_replay()
    replica.wait_caught_up(database)
    items, _, _ = _reads(api, user)
    assert items[0]["amount"]["micros"] == 2_000


def test_a_down_replica_falls_back_to_the_primary(api: Api, on_replica: tuple[Replica, Path]) -> None:
    replica, metrics_file = on_replica
    user = api.signup()
    _credit(user, 4_000)
    replica.stop()
    items, stats, export = _reads(api, user)
    assert items[0]["amount"]["micros"] == 4_000 and export["items"][0]["amount"]["micros"] == 4_000
    assert stats["periods"]["today"]["by_type"]["adjustment"]["micros"] == 4_000
    reads = _replica_reads(metrics_file)
    assert reads.get("fallback_error", 0) >= 1, reads
