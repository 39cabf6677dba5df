"""Generated requests, valid and invalid, against every route of docs/openapi.json: none may answer 5xx.

schemathesis derives requests from the OpenAPI document (which a test keeps true to the routes) and
they go through the very functions-framework apps ``serve`` mounts. A signed-in user's token is
sent, so routes get past authentication into validation and the services; staff routes answer 403
after validating the body. Routes that would end the session or the account are left out (their own
tests cover them).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from shared.config import ROOT, get_settings
from tests.helpers import Api

SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "openapi.json")
OPERATIONS = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())}
LEFT_OUT = {"POST /auth/logout", "POST /auth/password", "POST /privacy/erase"}


@pytest.fixture()
def fuzz_user(api: Api, monkeypatch: pytest.MonkeyPatch) -> Any:
    # the generator sends far more than a person would: keep the limits from answering everything
    for key in ("USER_REQUESTS_PER_MINUTE", "IP_LOGIN_PER_MINUTE", "IP_SIGNUP_PER_HOUR"):
        monkeypatch.setenv(key, "1000000")
    get_settings.cache_clear()
    yield api.signup(name="Fuzz")
    get_settings.cache_clear()


@pytest.mark.parametrize("label", sorted(set(OPERATIONS) - LEFT_OUT))
def test_no_generated_request_gets_a_server_error(label: str, fuzz_user: Any, apps: Any, gcs: Any) -> None:
    auth = {"Authorization": f"Bearer {fuzz_user.token}", "X-Forwarded-For": fuzz_user.ip}

    @given(case=OPERATIONS[label].as_strategy())
    @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: Any) -> None:
        case.call_and_validate(app=apps, headers={**(case.headers or {}), **auth}, checks=[not_a_server_error])

    check()


def test_every_route_is_fuzzed_or_deliberately_left_out() -> None:
    assert set(OPERATIONS) >= LEFT_OUT
    assert len(OPERATIONS) >= 40
