"""The local server's /console/ mount (shared/localserver.py), without a browser: what it serves,
with which cache lives and policy, and what it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from werkzeug.test import Client

from shared.localserver import Dispatcher, console_csp, serve_console


def _client(dist: Path) -> Client:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        rest = environ["PATH_INFO"].removeprefix("/console/")
        return serve_console(environ, start_response, rest, dist=dist)

    return Client(app)


def test_hashed_assets_are_immutable_and_the_index_is_revalidated(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text('<script type="module" src="./assets/index-abc123.js"></script>')
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    c = _client(tmp_path)
    index = c.get("/console/")
    assert index.status_code == 200 and index.headers["Cache-Control"] == "no-cache"
    assert index.headers["Content-Type"].startswith("text/html") and index.headers["X-Content-Type-Options"] == "nosniff"
    assert "script-src 'self'" in index.headers["Content-Security-Policy"]
    asset = c.get("/console/assets/index-abc123.js")
    assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert asset.headers["Content-Type"].startswith("text/javascript")
    assert c.get("/console/config.json").get_json() == {"api": {"auth": "/auth", "admin": "/admin"}}
    assert c.head("/console/").get_data() == b""


def test_nothing_outside_the_build_is_served_and_a_missing_build_says_what_to_do(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    dist.mkdir()
    (dist / "index.html").write_text("<p>console</p>")
    (tmp_path / "secret.txt").write_text("no")
    c = _client(dist)
    for path in ("/console/../secret.txt", "/console/%2e%2e/secret.txt", "/console/nope.js", "/console/assets/"):
        assert c.get(path).status_code == 404, path
    assert c.post("/console/").status_code == 405
    missing = _client(tmp_path / "nothing")
    resp = missing.get("/console/")
    assert resp.status_code == 503 and resp.get_json()["error"]["code"] == "console_not_built"


def test_the_dispatcher_mounts_the_console_and_redirects_the_bare_path() -> None:
    c = Client(Dispatcher({}, {}, "token"))
    bare = c.get("/console")
    assert bare.status_code == 308 and bare.headers["Location"] == "/console/"
    assert c.get("/console/config.json").status_code == 200


def test_the_policy_allows_no_inline_script_and_names_the_storage_origin() -> None:
    policy = console_csp(connect=["https://api.example"], storage=["https://storage.googleapis.com"])
    directives = dict(d.split(" ", 1) for d in policy.split("; "))
    assert directives["script-src"] == "'self'" and directives["default-src"] == "'none'"
    assert directives["frame-src"] == "https://storage.googleapis.com" and "https://api.example" in directives["connect-src"]
    assert "unsafe" not in policy
    assert dict(d.split(" ", 1) for d in console_csp().split("; "))["frame-src"] == "'none'"
