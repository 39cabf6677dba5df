"""Traces, read back from the file exporter after a short run through the real app (shared/tracing.py)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared import tracing
from shared.config import get_settings
from shared.db import Conn
from tests.helpers import Api
from tests.progress.test_heartbeats import age, hb, make_video


def _configure(monkeypatch: pytest.MonkeyPatch, path: Path, ratio: str, interval: str = "3600") -> None:
    monkeypatch.setenv("TRACES_EXPORTER", "file")
    monkeypatch.setenv("TRACES_FILE", str(path))
    monkeypatch.setenv("TRACE_SAMPLE_RATIO", ratio)
    monkeypatch.setenv("TRACES_EXPORT_INTERVAL_S", interval)
    get_settings.cache_clear()
    tracing.reset()


@pytest.fixture()
def spans_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "traces.jsonl"
    _configure(monkeypatch, path, "1")
    yield path
    monkeypatch.delenv("TRACES_EXPORTER")
    get_settings.cache_clear()
    tracing.reset()


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_requests_and_their_queries_are_traced(api: Api, owner_conn: Conn, spans_file: Path) -> None:
    threads_before = threading.active_count()
    user, video = api.signup(), make_video()
    assert hb(api, user, video, 0, 1)["status"] == "started"
    age(owner_conn, user, video, 10)
    assert hb(api, user, video, 10, 2)["status"] == "credited"
    assert api.get("/earnings/", user=user).status_code == 200

    assert _spans(spans_file) == []  # the interval (an hour) has not passed: buffered, not exported
    assert tracing.flush()
    spans = _spans(spans_file)
    by_id = {s["span_id"]: s for s in spans}

    heartbeats = [s for s in spans if s["name"] == "POST /progress/{video_id}"]
    assert len(heartbeats) == 2
    for request in heartbeats:
        assert request["kind"] == "SERVER" and request["parent_span_id"] is None
        assert request["attributes"]["http.route"] == "/{video_id}"
        assert request["attributes"]["http.response.status_code"] == 200
        children = [s for s in spans if s["parent_span_id"] == request["span_id"]]
        assert [c["name"] for c in children] == ["progress_heartbeat_authenticated"]
        query = children[0]
        assert query["kind"] == "CLIENT" and query["trace_id"] == request["trace_id"]
        assert query["attributes"] == {
            "db.system": "postgresql",
            "db.query.name": "progress_heartbeat_authenticated",
            "db.collection.name": "video_progress",
        }
        assert request["start_ns"] <= query["start_ns"] <= query["end_ns"] <= request["end_ns"]

    history = next(s for s in spans if s["name"] == "GET /earnings/")
    names = {s["name"] for s in spans if s["parent_span_id"] == history["span_id"]}
    assert {"session_authenticate", "earnings_history_page"} <= names
    assert all(s["parent_span_id"] is None or s["parent_span_id"] in by_id for s in spans)
    assert threading.active_count() == threads_before, "tracing must not start a thread"


def test_a_sampled_callers_trace_is_joined_and_nothing_else_is_traced_at_ratio_zero(
    api: Api, monkeypatch: pytest.MonkeyPatch, spans_file: Path
) -> None:
    _configure(monkeypatch, spans_file, "0", interval="0")
    assert api.get("/health/").status_code == 200
    assert api.get("/health/", headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-00"}).status_code == 200  # not sampled
    assert _spans(spans_file) == []

    assert api.get("/health/", headers={"traceparent": f"00-{'ab' * 16}-{'cd' * 8}-01"}).status_code == 200
    spans = _spans(spans_file)  # exported at the request's end (interval 0), no flush
    request = next(s for s in spans if s["name"] == "GET /health/")
    assert request["trace_id"] == "ab" * 16 and request["parent_span_id"] == "cd" * 8
