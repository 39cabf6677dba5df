"""One local server that mounts every function of ``main.py`` under its name, as in production.

Each function gets the very app functions-framework builds for it (``create_app``), so the same
entry points run locally and deployed. ``/auth/login`` reaches the ``auth`` app with path ``/login``;
nothing redirects (Pub/Sub push does not follow redirects).

Event functions (CloudEvent targets) are reachable only by the local platform's Pub/Sub and Eventarc
stand-ins: a delivery must carry this run's secret token, in the ``X-EarnPay-Event-Token`` header or
the ``event_token`` query parameter of the push endpoint (Pub/Sub push cannot set headers). In
production IAM does this (only the event invoker's OIDC token reaches them); locally, without it,
anyone who reached the server could POST a hand-made credit request and mint money.

``GET /`` answers with the functions, the documents and an example route. ``python -m
shared.localserver`` is the HTTP half of ``python main.py serve`` (gunicorn, started by
shared/localplatform.py in its own process, so it never forks a process holding emulator clients).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from shared.config import ROOT

# The per-run secret of event deliveries: set by the local platform for its HTTP server process.
EVENT_TOKEN_ENV = "EARNPAY_EVENT_TOKEN"  # noqa: S105  # names, not secrets
MAIL_DIR_ENV = "EARNPAY_LOCAL_MAIL_DIR"  # set by `serve`: where its SMTP server saves the mail (GET /_mail)
EVENT_TOKEN_HEADER = "X-EarnPay-Event-Token"  # noqa: S105
EVENT_TOKEN_PARAM = "event_token"  # noqa: S105

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def function_targets(source: Path = ROOT / "main.py") -> dict[str, str]:
    """Every decorated function of ``main.py`` and its signature type (http / cloudevent)."""
    import ast

    tree = ast.parse(source.read_text())
    targets: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Attribute) and isinstance(dec.value, ast.Name) and dec.value.id == "functions_framework":
                    targets[node.name] = {"http": "http", "cloud_event": "cloudevent"}[dec.attr]
    return targets


def build_apps(source: Path = ROOT / "main.py") -> dict[str, WsgiApp]:
    """A functions-framework app per target (``FUNCTION_SIGNATURE_TYPE`` cleared between them)."""
    import functions_framework

    apps: dict[str, WsgiApp] = {}
    for target, signature in function_targets(source).items():
        os.environ.pop("FUNCTION_SIGNATURE_TYPE", None)
        apps[target] = functions_framework.create_app(target, str(source), signature)
    os.environ.pop("FUNCTION_SIGNATURE_TYPE", None)
    return apps


# The staff console (console/, built by Vite into console/dist) is served at /console/ like the CDN
# serves it in production (infra/console.tf): hashed assets cached for a year, index.html and
# config.json revalidated on every load, and the same strict Content-Security-Policy.
CONSOLE_DIST = ROOT / "console" / "dist"
CONSOLE_PREFIX = "console"
_CONSOLE_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}


def console_csp(connect: Iterable[str] = (), storage: Iterable[str] = ()) -> str:
    """The console's Content-Security-Policy: scripts and styles from its own origin only (no inline
    script, no eval), API calls to ``connect``, document previews (images, PDFs) from ``storage``."""
    extra_connect = " ".join(connect)
    store = " ".join(storage)
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' data: {store}".strip(),
            f"frame-src {store}".strip() if store else "frame-src 'none'",
            f"connect-src 'self' {extra_connect}".strip(),
            "font-src 'self'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _console_headers(content_type: str, cache: str) -> list[tuple[str, str]]:
    from shared.storage import emulator_host

    storage = [h for h in (emulator_host(),) if h]
    return [
        ("Content-Type", content_type),
        ("Cache-Control", cache),
        ("Content-Security-Policy", console_csp(storage=storage)),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]


def serve_console(environ: dict[str, Any], start_response: Callable[..., Any], rest: str, dist: Path = CONSOLE_DIST) -> list[bytes]:
    """``GET /console/<rest>``: the built console (hashed assets immutable, index.html no-cache)."""
    if environ.get("REQUEST_METHOD", "GET") not in ("GET", "HEAD"):
        return _error(start_response, "405 Method Not Allowed", "method_not_allowed", "the console is static: GET only")
    if rest == "config.json":
        # where the console finds the API: locally the functions of this very server
        body = json.dumps({"api": {"auth": "/auth", "admin": "/admin"}}).encode()
        start_response("200 OK", [*_console_headers("application/json", "no-cache"), ("Content-Length", str(len(body)))])
        return [body]
    index = dist / "index.html"
    if not index.is_file():
        return _error(start_response, "503 Service Unavailable", "console_not_built", "the console is not built: run `make console`")
    target = (dist / (rest or "index.html")).resolve()
    if not target.is_relative_to(dist.resolve()) or not target.is_file():
        return _error(start_response, "404 Not Found", "not_found", f"no console file {rest!r}")
    hashed = target.parent.name == "assets"
    cache = "public, max-age=31536000, immutable" if hashed else "no-cache"
    body = target.read_bytes()
    content_type = _CONSOLE_TYPES.get(target.suffix, "application/octet-stream")
    start_response("200 OK", [*_console_headers(content_type, cache), ("Content-Length", str(len(body)))])
    return [b""] if environ.get("REQUEST_METHOD") == "HEAD" else [body]


def _json(start_response: Callable[..., Any], status: str, obj: Any) -> list[bytes]:
    body = json.dumps(obj, indent=1).encode() + b"\n"
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("X-Request-Id", uuid.uuid4().hex)]
    start_response(status, headers)
    return [body]


def _error(start_response: Callable[..., Any], status: str, code: str, message: str, **details: Any) -> list[bytes]:
    return _json(start_response, status, {"error": {"code": code, "message": message, "details": details}})


class Dispatcher:
    """WSGI app routing ``/<function>/<rest>`` to that function's app with path ``/<rest>``.

    ``signatures`` (name -> http / cloudevent) marks the event functions, which answer only
    deliveries carrying ``event_token`` (header or query parameter). Without a token none does.
    """

    def __init__(
        self,
        apps: dict[str, WsgiApp],
        signatures: dict[str, str] | None = None,
        event_token: str | None = None,
        mail_dir: Path | None = None,
    ) -> None:
        self.apps = apps
        self.signatures = signatures or {}
        self.event_token = event_token
        self.mail_dir = mail_dir

    def mailbox(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """``GET /_mail[?to=address]``: the emails the local SMTP server received, newest first (50)."""
        to = dict(parse_qsl(environ.get("QUERY_STRING", ""))).get("to", "").strip().lower()
        items: list[dict[str, str]] = []
        files = sorted(self.mail_dir.glob("*.txt"), reverse=True) if self.mail_dir and self.mail_dir.is_dir() else []
        for path in files:
            head, _, text = path.read_text(encoding="utf-8", errors="replace").partition("\n\n")
            headers = dict(line.split(": ", 1) for line in head.splitlines() if ": " in line)
            if to and to not in headers.get("To", "").lower():
                continue
            items.append({"file": path.name, **{k.lower(): v for k, v in headers.items()}, "text": text})
            if len(items) == 50:
                break
        return _json(start_response, "200 OK", {"directory": str(self.mail_dir) if self.mail_dir else None, "items": items})

    def _token_ok(self, environ: dict[str, Any]) -> bool:
        """True when the request carries this run's event token; removes it from the query string."""
        given = environ.get("HTTP_" + EVENT_TOKEN_HEADER.upper().replace("-", "_"), "")
        query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        rest = [(k, v) for k, v in query if k != EVENT_TOKEN_PARAM]
        if len(rest) != len(query):
            given = given or next(v for k, v in query if k == EVENT_TOKEN_PARAM)
            environ["QUERY_STRING"] = urlencode(rest)
        return bool(self.event_token) and hmac.compare_digest(given.encode(), str(self.event_token).encode())

    def index(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        """``GET /``: what runs here, where the documents are, and a route to try."""
        base = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST') or environ.get('SERVER_NAME', '127.0.0.1')}"
        http = sorted(n for n in self.apps if self.signatures.get(n, "http") == "http")
        events = sorted(n for n in self.apps if self.signatures.get(n) == "cloudevent")
        return _json(
            start_response,
            "200 OK",
            {
                "service": "EarnPay local platform",
                "functions": {
                    "http": {name: f"{base}/{name}/" for name in http},
                    "events": {name: "Pub/Sub push or Eventarc deliveries of the local platform only" for name in events},
                },
                "console": f"{base}/console/",
                "docs": {
                    "openapi": f"{base}/openapi.json",
                    "readme": "README.md (Try it: sign up, watch a video, get paid)",
                    "architecture": "docs/architecture.md",
                },
                "mail": f"{base}/_mail (the emails sent, newest first; ?to=address)",
                "example": {"route": f"{base}/health/", "try": f"curl -s {base}/videos/ -H 'Authorization: Bearer $TOKEN'"},
            },
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        name, _, rest = path.lstrip("/").partition("/")
        method = environ.get("REQUEST_METHOD", "GET")
        if name == "" and method in ("GET", "HEAD"):
            return self.index(environ, start_response)
        if name == "_mail" and not rest and method in ("GET", "HEAD"):
            return self.mailbox(environ, start_response)
        if name == "openapi.json" and not rest and method in ("GET", "HEAD"):
            body = (ROOT / "docs" / "openapi.json").read_bytes()
            start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
            return [body]
        if name == CONSOLE_PREFIX and name not in self.apps:
            if path == "/" + CONSOLE_PREFIX:  # relative asset URLs need the trailing slash
                start_response("308 Permanent Redirect", [("Location", "/console/"), ("Content-Length", "0")])
                return [b""]
            return serve_console(environ, start_response, rest)
        app = self.apps.get(name)
        if app is None:
            return _error(start_response, "404 Not Found", "function_not_found", f"no function named {name!r}", functions=sorted(self.apps))
        if self.signatures.get(name) == "cloudevent" and not self._token_ok(environ):
            return _error(
                start_response,
                "403 Forbidden",
                "event_source_refused",
                f"{name} accepts deliveries from the local Pub/Sub and Eventarc stand-ins only",
            )
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
        environ["PATH_INFO"] = "/" + rest
        return app(environ, start_response)


def make_app(event_token: str | None = None) -> Dispatcher:
    """Every function of main.py; event functions answer only ``event_token`` (default: the
    ``EARNPAY_EVENT_TOKEN`` of this process, else a random one nobody knows)."""
    token = event_token or os.environ.get(EVENT_TOKEN_ENV) or secrets.token_urlsafe(32)
    mail_dir = os.environ.get(MAIL_DIR_ENV)
    return Dispatcher(build_apps(), function_targets(), token, Path(mail_dir) if mail_dir else None)


def serve(host: str, port: int, workers: int = 1, threads: int = 8) -> None:
    """Runs the dispatcher under gunicorn (gthread), as functions-framework does in production."""
    from gunicorn.app.base import BaseApplication

    from shared.db import forget_pools

    class _App(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "timeout": 0,
                "keepalive": 30,
                "accesslog": None,
                "loglevel": "warning",
                # each worker opens its own connections: never share the parent's sockets
                "post_fork": lambda _server, _worker: forget_pools(),
                # a stop signal ends in-flight requests for at most this long (serve stops within 10 s)
                "graceful_timeout": 5,
            }.items():
                self.cfg.set(key, value)

        def load(self) -> Dispatcher:
            return make_app()

    _App().run()


def main(argv: list[str] | None = None) -> int:
    """``python -m shared.localserver --host H --port P [--workers N] [--threads N]`` (started by serve)."""
    import argparse

    from shared.logs import configure

    parser = argparse.ArgumentParser(prog="python -m shared.localserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    configure()
    serve(args.host, args.port, workers=args.workers, threads=args.threads)
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
