"""The caller's real address for each proxy layout (TRUSTED_PROXY_HOPS, docs/deploy.md): entries a
client writes into X-Forwarded-For itself are ignored, so a new value on each try changes nothing."""

from __future__ import annotations

import flask
import pytest

from shared.config import get_settings
from shared.http import client_ip
from tests.helpers import PASSWORD, Api, unique_email

app = flask.Flask(__name__)


def ip_of(monkeypatch: pytest.MonkeyPatch, hops: int, peer: str, *forwarded: str) -> str:
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", str(hops))
    get_settings.cache_clear()
    headers = [("X-Forwarded-For", value) for value in forwarded]
    with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": peer}):
        return client_ip(flask.request)


def test_local_direct_connection_uses_the_peer_and_ignores_any_header(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ip_of(monkeypatch, 0, "192.0.2.7") == "192.0.2.7"
    assert ip_of(monkeypatch, 0, "192.0.2.7", "203.0.113.9") == "192.0.2.7"  # written by the client itself
    assert ip_of(monkeypatch, 0, "192.0.2.7", "203.0.113.9, 198.51.100.1") == "192.0.2.7"


def test_cloud_functions_front_end_one_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    # Google's front end appends the address it saw: "<whatever the client sent>, <client>"
    assert ip_of(monkeypatch, 1, "169.254.1.1", "198.51.100.23") == "198.51.100.23"
    assert ip_of(monkeypatch, 1, "169.254.1.1", "1.2.3.4, 9.9.9.9, 198.51.100.23") == "198.51.100.23"
    assert ip_of(monkeypatch, 1, "169.254.1.1", "1.2.3.4", "198.51.100.23") == "198.51.100.23"  # header repeated
    assert ip_of(monkeypatch, 1, "169.254.1.1", "2001:db8::1") == "2001:db8::1"


def test_https_load_balancer_two_hops(monkeypatch: pytest.MonkeyPatch) -> None:
    # the load balancer appends "<client>, <load balancer>"; the last entry is the balancer itself
    assert ip_of(monkeypatch, 2, "169.254.1.1", "198.51.100.23, 34.111.0.5") == "198.51.100.23"
    assert ip_of(monkeypatch, 2, "169.254.1.1", "6.6.6.6, 7.7.7.7, 198.51.100.23, 34.111.0.5") == "198.51.100.23"


def test_short_or_malformed_headers_fall_back_to_the_peer(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ip_of(monkeypatch, 1, "192.0.2.7") == "192.0.2.7"
    assert ip_of(monkeypatch, 2, "192.0.2.7", "198.51.100.23") == "192.0.2.7"  # fewer entries than hops
    assert ip_of(monkeypatch, 1, "192.0.2.7", "1.2.3.4, not-an-ip") == "192.0.2.7"
    assert ip_of(monkeypatch, 1, "192.0.2.7", "1.2.3.4, ,") == "1.2.3.4"  # empty entries are not hops


@pytest.mark.parametrize(("hops", "real_suffix"), [(1, ["203.0.113.50"]), (2, ["203.0.113.50", "34.111.0.5"])])
def test_rotating_spoofed_entries_meet_the_login_throttle(
    api: Api, monkeypatch: pytest.MonkeyPatch, hops: int, real_suffix: list[str]
) -> None:
    """The issue's attack: a new X-Forwarded-For value on each try. Behind the front end (and the load
    balancer) the real address is appended after the spoofed one, so every try counts against it."""
    monkeypatch.setenv("TRUSTED_PROXY_HOPS", str(hops))
    monkeypatch.setenv("IP_LOGIN_PER_MINUTE", "5")
    get_settings.cache_clear()
    real_suffix = [f"203.0.113.{50 + hops}", *real_suffix[1:]]
    statuses = []
    for i in range(8):
        spoofed = f"10.{i}.{i}.{i}"
        resp = api.client.post(
            "/auth/login",
            json={"email": unique_email(), "password": PASSWORD},
            headers={"X-Forwarded-For": ", ".join([spoofed, *real_suffix])},
        )
        statuses.append(resp.status_code)
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 3
