"""A storage outage is a 503 the client may retry (and a retry for event handlers), never a bare 500."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from shared import storage
from shared.errors import ServiceUnavailable
from tests.helpers import Api, error_code


@pytest.fixture()
def storage_down(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    storage.reset_client()
    yield
    monkeypatch.undo()
    storage.reset_client()


def test_storage_helpers_raise_service_unavailable(storage_down: None) -> None:
    with pytest.raises(ServiceUnavailable) as exc:
        storage.upload_bytes("earnpay-local-exports", "x/y.json", b"{}", "application/json")
    assert exc.value.code == "storage_unavailable" and exc.value.status == 503


def test_an_export_during_a_storage_outage_is_a_503_with_retry_after(api: Api, storage_down: Any) -> None:
    user = api.signup()
    resp = api.post("/privacy/export", user=user)
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert error_code(resp) == "storage_unavailable"
    assert resp.headers["Retry-After"] == "5"
