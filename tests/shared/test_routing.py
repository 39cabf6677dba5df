"""Routing (werkzeug's Map and Rule inside shared.http.Router): 404 and 405 bodies, Allow, OPTIONS,
trailing slashes answered directly (never a redirect: Pub/Sub push does not follow one), HEAD as GET."""

from __future__ import annotations

from typing import Any

import flask

from shared.http import Router

router = Router("test_routing")


@router.route("GET", "/things", auth=None)
def list_things(ctx: Any) -> dict[str, Any]:
    return {"route": "list"}


@router.route("POST", "/things", auth=None)
def make_thing(ctx: Any) -> dict[str, Any]:
    return {"route": "make"}


@router.route("GET", "/things/special", auth=None)
def special(ctx: Any) -> dict[str, Any]:
    return {"route": "special"}


@router.route("GET", "/things/{thing_id}", auth=None)
def one_thing(ctx: Any) -> dict[str, Any]:
    return {"route": "one", "id": ctx.params["thing_id"]}


@router.route("DELETE", "/things/{thing_id}/parts/{part}", auth=None)
def drop_part(ctx: Any) -> dict[str, Any]:
    return {"route": "part", **ctx.params}


def call(method: str, path: str) -> flask.Response:
    app = flask.Flask("test_routing")
    with app.test_request_context(path, method=method):
        return router(flask.request)


def test_routes_match_with_and_without_a_trailing_slash_and_never_redirect() -> None:
    for path in ("/things", "/things/"):
        resp = call("GET", path)
        assert resp.status_code == 200, path
        assert resp.get_json() == {"route": "list"}
    assert call("GET", "/things/special").get_json() == {"route": "special"}  # the static rule wins over {thing_id}
    assert call("GET", "/things/abc/").get_json() == {"route": "one", "id": "abc"}
    assert call("DELETE", "/things/a/parts/b").get_json() == {"route": "part", "thing_id": "a", "part": "b"}
    assert call("HEAD", "/things").status_code == 200


def test_unknown_paths_are_404_with_the_route_not_found_body() -> None:
    for path in ("/nothing", "//things", "/things//", "/things/a//parts/b", "/things/a/parts", "/things/a/parts/b/c"):
        resp = call("GET", path)
        assert resp.status_code == 404, path
        assert resp.get_json()["error"]["code"] == "route_not_found", path
    assert call("GET", "/nothing").get_json()["error"]["message"] == "no route GET /test_routing/nothing"


def test_a_known_path_with_another_method_is_405_with_allow() -> None:
    resp = call("PUT", "/things/")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "GET, POST"
    assert resp.get_json()["error"] == {
        "code": "method_not_allowed",
        "message": "PUT is not allowed here",
        "details": {"allowed": ["GET", "POST"]},
    }
    resp = call("GET", "/things/a/parts/b")
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "DELETE"  # werkzeug's automatic HEAD is not listed: no route declares it


def test_options_lists_the_methods_and_404s_an_unknown_path() -> None:
    resp = call("OPTIONS", "/things")
    assert resp.status_code == 204
    assert resp.headers["Allow"] == "GET, POST, OPTIONS"
    assert call("OPTIONS", "/things/x/parts/y/").headers["Allow"] == "DELETE, OPTIONS"
    missing = call("OPTIONS", "/nothing")
    assert missing.status_code == 404
    assert missing.get_json()["error"]["message"] == "no route /test_routing/nothing"
