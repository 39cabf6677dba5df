"""The OpenAPI document matches the routes that exist, route for route."""

from __future__ import annotations

import json

import main  # noqa: F401  # imports every router
from shared.config import ROOT
from shared.http import Router
from shared.localserver import function_targets
from shared.openapi import build, render

DOC = ROOT / "docs" / "openapi.json"


def _routes_in_code() -> set[tuple[str, str]]:
    return {
        (route.method.lower(), f"/{name}{route.pattern}")
        for name, router in Router.registry.items()
        if not name.startswith("test")
        for route in router.routes
    }


def test_every_route_is_documented_and_every_documented_route_exists() -> None:
    doc = json.loads(DOC.read_text())
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    in_code = _routes_in_code()
    assert in_code - documented == set(), "routes missing from docs/openapi.json: run `python main.py openapi`"
    assert documented - in_code == set(), "docs/openapi.json documents routes that do not exist"


def test_committed_document_is_current() -> None:
    routers = {k: v for k, v in Router.registry.items() if not k.startswith("test")}
    assert DOC.read_text() == render(build(routers)), "docs/openapi.json is stale: run `python main.py openapi`"


def test_every_http_function_has_a_router() -> None:
    http_functions = {name for name, kind in function_targets().items() if kind == "http"}
    assert http_functions <= set(Router.registry)


def test_documented_201s_are_the_handlers_that_answer_201() -> None:
    import inspect

    from shared.openapi import CREATED

    answering_201 = {
        route.handler.__name__
        for name, router in Router.registry.items()
        if not name.startswith("test")
        for route in router.routes
        if "status=201" in inspect.getsource(route.handler) or "else 201" in inspect.getsource(route.handler)
    }
    assert answering_201 == set(CREATED)
