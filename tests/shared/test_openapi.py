"""The OpenAPI document matches the routes that exist, route for route."""

from __future__ import annotations

import json

from main import ROUTERS
from shared.config import ROOT
from shared.http import Router
from shared.localserver import function_targets
from shared.openapi import build, render

DOC = ROOT / "docs" / "openapi.json"


def _routes_in_code() -> set[tuple[str, str]]:
    return {
        (route.method.lower(), f"/{name}{route.pattern}") for router in ROUTERS for name in [router.function] for route in router.routes
    }


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    doc = json.loads(DOC.read_text())
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    in_code = _routes_in_code()
    assert in_code - documented == set(), "routes missing from docs/openapi.json: run `python main.py openapi`"
    assert documented - in_code == set(), "docs/openapi.json documents routes that do not exist"


def test_committed_document_is_current() -> None:
    assert DOC.read_text() == render(build(ROUTERS)), "docs/openapi.json is stale: run `python main.py openapi`"


def test_every_http_function_has_a_router() -> None:
    http_functions = {name for name, kind in function_targets().items() if kind == "http"}
    assert http_functions <= {router.function for router in ROUTERS}


def test_a_declared_success_status_is_answered_and_documented() -> None:
    import flask

    router = Router("test_status")

    @router.route("POST", "/things", auth=None, status=201, replay_status=200, summary="make a thing")
    def make(ctx: object) -> dict[str, str]:
        return {"made": "yes"}

    app = flask.Flask("test_status")
    with app.test_request_context("/things", method="POST"):
        resp = router(flask.request)
    assert resp.status_code == 201 and resp.get_json() == {"made": "yes"}
    op = build((router,))["paths"]["/test_status/things"]["post"]
    assert {"200", "201"} <= set(op["responses"]) and op["responses"]["201"]["description"] == "success"
