"""The product document's metrics, read back from the file exporter after a short run through the real app."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import metrics
from shared.config import get_settings
from shared.db import Conn
from tests.helpers import Api
from tests.progress.test_heartbeats import age, hb, make_video


@pytest.fixture()
def exported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("METRICS_EXPORTER", "file")
    monkeypatch.setenv("METRICS_FILE", str(path))
    monkeypatch.setenv("METRICS_EXPORT_INTERVAL_S", "3600")
    get_settings.cache_clear()
    metrics.reset()
    yield path
    metrics.reset()


def _points(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def _value(points: list[dict[str, Any]], name: str, **attrs: Any) -> Any:
    found = [p for p in points if p["name"] == name and all(p["attributes"].get(k) == v for k, v in attrs.items())]
    assert found, f"{name} {attrs} not exported; got {sorted({p['name'] for p in points})}"
    return found[-1]


def test_a_short_run_exports_the_documents_metrics(api: Api, owner_conn: Conn, exported: Path) -> None:
    threads_before = threading.active_count()
    user, video = api.signup(), make_video()
    assert hb(api, user, video, 0, 1)["status"] == "started"
    age(owner_conn, user, video, 10)
    assert hb(api, user, video, 10, 2)["status"] == "credited"
    assert hb(api, user, video, 10, 2)["status"] == "stale"  # a replay: rejected, reason "stale"
    missing = api.post(f"/progress/{uuid.uuid4()}", user=user, json={"position_seconds": 1, "playing": True, "client_seq": 1})
    assert missing.status_code == 404
    assert api.get("/health/").status_code == 200

    # The cadence holds: an hour has not passed, so no request exported anything yet.
    assert _points(exported) == []
    assert metrics.flush()
    points = _points(exported)

    assert _value(points, "earnpay.heartbeats", status="credited")["value"] >= 1
    assert _value(points, "earnpay.heartbeats.rejected", reason="stale")["value"] >= 1
    assert _value(points, "earnpay.heartbeats.rejected", reason="video_not_found")["value"] >= 1
    assert _value(points, "earnpay.watch.credited_seconds")["value"] >= 10
    assert _value(points, "earnpay.watch.reported_seconds")["value"] >= 10
    heartbeat_query = _value(points, "earnpay.db.query.duration", query="progress_heartbeat_authenticated")
    assert heartbeat_query["attributes"]["table"] == "video_progress" and heartbeat_query["count"] >= 3
    assert _value(points, "earnpay.db.query.duration", table="videos")["count"] >= 1
    assert 0 <= _value(points, "earnpay.db.pool.utilisation", pool="primary")["value"] <= 1
    assert _value(points, "earnpay.sessions.active")["value"] >= 1
    route = _value(points, "earnpay.http.request.duration", function="progress", route="POST /{video_id}", status_class="2xx")
    assert route["count"] >= 3
    assert threading.active_count() == threads_before, "metrics must not start a thread"


def test_requests_export_on_the_cadence(api: Api, monkeypatch: pytest.MonkeyPatch, exported: Path) -> None:
    monkeypatch.setenv("METRICS_EXPORT_INTERVAL_S", "0")
    get_settings.cache_clear()
    metrics.reset()
    assert api.get("/health/").status_code == 200
    # The request itself exported at its end (interval 0): no flush, no thread.
    assert _value(_points(exported), "earnpay.http.request.duration", function="health", route="GET /")["count"] == 1


def test_table_names_come_from_the_statement() -> None:
    assert metrics.table_of("SELECT a FROM earnings WHERE user_id = $1") == "earnings"
    assert metrics.table_of("INSERT INTO ledger_entries (a) VALUES ($1)") == "ledger_entries"
    assert metrics.table_of("UPDATE sessions SET last_seen_at = now()") == "sessions"
    assert metrics.table_of("SELECT 1") == "none"


def test_a_heartbeat_is_one_round_trip_with_the_session_check_inside(
    api: Api, owner_conn: Conn, exported: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user, video = api.signup(), make_video()
    hb(api, user, video, 0, 1)
    metrics.flush()
    exported.unlink()
    for seq in range(2, 5):
        hb(api, user, video, 0, seq, playing=False)
    metrics.flush()
    points = _points(exported)
    counts = {p["attributes"]["query"]: p["count"] for p in points if p["name"] == "earnpay.db.query.duration"}
    # cumulative since the first heartbeat: 4 heartbeats, 4 statements, no separate session check for them
    assert counts["progress_heartbeat_authenticated"] == 4
    assert "progress_heartbeat" not in counts and "session_authenticate" not in counts
    # the folded check still answers like the router's: 401 for an unknown session, 429 past the limit
    bad = api.client.post(
        f"/progress/{video}", json={"position_seconds": 1, "playing": True, "client_seq": 9}, headers={"Authorization": "Bearer nope"}
    )
    assert bad.status_code == 401
    monkeypatch.setenv("USER_REQUESTS_PER_MINUTE", "1")
    get_settings.cache_clear()
    limited = api.post(f"/progress/{video}", user=user, json={"position_seconds": 1, "playing": True, "client_seq": 10})
    assert limited.status_code == 429 and limited.headers.get("Retry-After")
