"""One local server that mounts every function of ``main.py`` under its name, as in production.

Each function gets the very app functions-framework builds for it (``create_app``), so the same
entry points run locally and deployed. ``/auth/login`` reaches the ``auth`` app with path ``/login``;
nothing redirects (Pub/Sub push does not follow redirects).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from shared.config import ROOT

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


class Dispatcher:
    """WSGI app routing ``/<function>/<rest>`` to that function's app with path ``/<rest>``."""

    def __init__(self, apps: dict[str, WsgiApp]) -> None:
        self.apps = apps

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "") or "/"
        name, _, rest = path.lstrip("/").partition("/")
        app = self.apps.get(name)
        if app is None:
            body = json.dumps(
                {
                    "error": {
                        "code": "function_not_found",
                        "message": f"no function named {name!r}",
                        "details": {"functions": sorted(self.apps)},
                    }
                }
            ).encode()
            import uuid

            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("X-Request-Id", uuid.uuid4().hex)]
            start_response("404 Not Found", headers)
            return [body]
        environ["SCRIPT_NAME"] = environ.get("SCRIPT_NAME", "") + "/" + name
        environ["PATH_INFO"] = "/" + rest
        return app(environ, start_response)


def make_app() -> Dispatcher:
    return Dispatcher(build_apps())


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
            }.items():
                self.cfg.set(key, value)

        def load(self) -> Dispatcher:
            return make_app()

    _App().run()
