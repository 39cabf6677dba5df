"""``python main.py <command>``: the operations' command line."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from typing import Any

from shared.config import get_settings
from shared.db import get_db
from shared.logs import configure

COMMANDS: dict[str, Any] = {}


def command(fn: Any) -> Any:
    COMMANDS[fn.__name__.replace("_", "-").removeprefix("cmd-")] = fn
    return fn


def _print(obj: Any) -> None:
    from shared.http import dumps

    print(dumps(obj) if not isinstance(obj, str) else obj)


@command
def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending database migrations."""
    from shared.dbsetup import prepare

    applied = prepare(get_settings())
    _print({"applied": applied})
    return 0


@command
def cmd_serve(args: argparse.Namespace) -> int:
    """Serve every function on one port (embedded database when none is configured)."""
    from shared.dbsetup import prepare
    from shared.localserver import serve

    settings = get_settings()
    port = args.port or int(os.environ.get("PORT", "8080"))
    prepare(settings)
    if not args.no_seed:
        from functions.videos.demo import seed_demo

        seed_demo(get_db())
    if not settings.is_production:
        _local_cloud_storage()
    where = "embedded PostgreSQL at " + str(settings.embedded_pgdata) if settings.uses_embedded_database else "the configured database"
    print(f"EarnPay serving every function on http://{args.host}:{port}/<function>/... against {where}", flush=True)
    serve(args.host, port, workers=args.workers, threads=args.threads)
    return 0


def _local_cloud_storage() -> None:
    """Locally: a GCS emulator (unless STORAGE_EMULATOR_HOST names one) and a stand-in for Eventarc.

    The emulator sends no object-finalized events, so a background loop applies uploads the way
    the ``kyc_document_uploaded`` event would (the same code as the production sweep for lost events).
    """
    import threading
    import time

    from functions.kyc.service import reconcile_uploads
    from shared import storage
    from shared.logs import get_logger

    log = get_logger("serve")
    if not os.environ.get("STORAGE_EMULATOR_HOST"):
        emulator = storage.start_emulator()
        os.environ["STORAGE_EMULATOR_HOST"] = emulator.url
        storage.reset_client()
        print(f"GCS emulator (in memory) on {emulator.url}", flush=True)
    storage.ensure_buckets()

    def local_eventarc() -> None:
        while True:
            time.sleep(2)
            try:
                reconcile_uploads(get_db(), min_age_s=0, limit=100)
            except Exception as exc:  # keep the loop alive; the next pass retries
                log.warning("local upload sync failed: %s", exc, extra={"event": "local_upload_sync_failed"})

    threading.Thread(target=local_eventarc, name="local-eventarc", daemon=True).start()


@command
def cmd_create_admin(args: argparse.Namespace) -> int:
    """Create the first staff account (password from EARNPAY_ADMIN_PASSWORD, stdin or a prompt)."""
    from functions.auth.service import create_admin
    from shared.dbsetup import prepare

    password = os.environ.get("EARNPAY_ADMIN_PASSWORD")
    if not password:
        password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("password: ")
    if len(password) < 12:
        print("the admin password must have at least 12 characters", file=sys.stderr)
        return 2
    prepare(get_settings())
    user = create_admin(get_db(), args.email, password, args.name)
    _print({"created": user})
    return 0


@command
def cmd_seed_demo(args: argparse.Namespace) -> int:
    """Load the demo video catalogue (idempotent)."""
    from functions.videos.demo import seed_demo
    from shared.dbsetup import prepare

    prepare(get_settings())
    _print({"videos": seed_demo(get_db())})
    return 0


@command
def cmd_openapi(args: argparse.Namespace) -> int:
    """Write the OpenAPI document generated from the routes (docs/openapi.json)."""
    import main  # noqa: F401  # imports every router
    from shared.config import ROOT
    from shared.openapi import build, render

    target = ROOT / "docs" / "openapi.json"
    target.write_text(render(build()))
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python main.py", description="EarnPay operations")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, fn in COMMANDS.items():
        p = sub.add_parser(name, help=fn.__doc__)
        if name == "serve":
            p.add_argument("--host", default="127.0.0.1")
            p.add_argument("--port", type=int, default=None)
            p.add_argument("--workers", type=int, default=1)
            p.add_argument("--threads", type=int, default=8)
            p.add_argument("--no-seed", action="store_true", help="do not load the demo catalogue")
        elif name == "create-admin":
            p.add_argument("--email", required=True)
            p.add_argument("--name", default="Administrator")
        for hook in EXTRA_ARGUMENTS.get(name, []):
            hook(p)
    return parser


# Areas add their own commands (and arguments) by importing this module and decorating.
EXTRA_ARGUMENTS: dict[str, list[Any]] = {}


def main(argv: list[str]) -> int:
    configure()
    import functions.commands  # noqa: F401  # registers the areas' commands

    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command](args) or 0)
    except Exception as exc:  # one clear line for operators; the stack trace is in the log
        import logging

        logging.getLogger("cli").exception("command failed")
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 1
