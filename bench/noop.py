"""A bare functions-framework no-op, served like the local server (gunicorn gthread): the CPU reference.

python -m bench.noop --port 8099 --workers 2 --threads 8
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import flask
import functions_framework


@functions_framework.http
def noop(request: flask.Request) -> flask.Response:
    """Answers 204 and does nothing else."""
    return flask.Response(status=204)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.noop")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    args = parser.parse_args(argv)
    from gunicorn.app.base import BaseApplication

    app = functions_framework.create_app("noop", __file__, "http")

    class Server(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"127.0.0.1:{args.port}",
                "workers": args.workers,
                "threads": args.threads,
                "worker_class": "gthread",
                "timeout": 0,
                "loglevel": "warning",
            }.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            return app

    Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
