"""``python main.py <command>``: the operations' command line."""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
import time
from typing import Any

from functions.ledger import commands as ledger_commands
from functions.maintenance import commands as maintenance_commands
from functions.payouts import commands as payouts_commands
from functions.privacy import commands as privacy_commands
from shared.config import ROOT, get_settings
from shared.db import get_db
from shared.http import Router
from shared.logs import configure
from shared.render import echo


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending database migrations."""
    from shared.dbsetup import prepare

    applied = prepare(get_settings())
    echo({"applied": applied})
    return 0


class CommandError(Exception):
    """A mistake or a refusal worth one line on stderr (no stack trace) and a non-zero exit."""


def cmd_serve(args: argparse.Namespace) -> int:
    """Run the local platform: every function on one port, the Pub/Sub and GCS emulators, the scheduler."""
    from shared import embedded
    from shared.db import admin_url, app_url, reset_pools
    from shared.dbsetup import prepare
    from shared.localplatform import Platform, Shutdown, check_port_free, short_path, stop_signals
    from shared.topology import load

    settings = get_settings()
    if settings.is_production:
        raise CommandError("serve runs the local platform; deployed functions are served by Cloud Functions")
    port = args.port or int(os.environ.get("PORT", "8080"))
    check_port_free(args.host, port)  # first: a busy port is a one-line error at once
    topology = load()
    platform = Platform(
        host=args.host,
        port=port,
        project=settings.gcp_project,
        topology=topology,
        event_token=os.environ.get("EARNPAY_EVENT_TOKEN") or secrets.token_urlsafe(32),
        storage_dir=settings.local_storage_dir,
        mail_dir=settings.local_storage_dir.parent / "mail",
        pubsub=not args.no_pubsub,
        scheduler=not args.no_scheduler,
        run_jobs=list(args.run_job or []),
        workers=args.workers,
        threads=args.threads,
        say=lambda line: print(line, flush=True),
    )
    for name in platform.run_jobs:
        try:
            topology.job(name)  # an unknown job name is a mistake: say so before starting anything
        except KeyError as exc:
            raise CommandError(exc.args[0]) from None
    started_db = False
    with stop_signals():
        try:
            print("EarnPay local platform: starting (Ctrl-C stops everything)", flush=True)
            platform.begin()  # the Pub/Sub emulator boots while the database is prepared
            started_db = settings.uses_embedded_database
            applied = prepare(settings)
            seeded = ""
            if not args.no_seed:
                from functions.videos.demo import seed_demo

                with get_db().transaction() as conn:
                    seed_demo(conn)
                seeded = ", demo catalogue loaded"
            where = f"embedded PostgreSQL 16 in {short_path(settings.embedded_pgdata)}" if started_db else "the configured database"
            print(f"  database    {where} ({len(applied)} migrations applied{seeded})", flush=True)
            if started_db:  # the HTTP server connects straight to it and never starts a server of its own
                platform.env.update({"DATABASE_URL": app_url(settings), "MIGRATE_DATABASE_URL": admin_url(settings)})
            platform.start(stand_ins={"local-eventarc": _local_eventarc})
            print(f"  functions   {platform.base_url}/<function>/...  (GET {platform.base_url}/ lists them)", flush=True)
            print(f"  console     {platform.base_url}/console/  (the staff console; `make console` rebuilds it)", flush=True)
            print(f"EarnPay ready on {platform.base_url}", flush=True)
            return platform.wait()
        except Shutdown as signal_name:
            print(f"EarnPay local platform: {signal_name} received, stopping", flush=True)
            return 0
        finally:
            t0 = time.monotonic()
            platform.stop()
            reset_pools()
            if started_db:
                embedded.stop(settings.embedded_pgdata)
            print(f"EarnPay local platform: stopped ({time.monotonic() - t0:.1f} s)", flush=True)


def _local_eventarc(stop: Any) -> None:
    """The Eventarc stand-in for KYC uploads: the GCS emulator sends no object-finalized events, so
    every 2 s this applies new uploads the way ``kyc_document_uploaded`` would (the same code as the
    production sweep for lost events)."""
    from functions.kyc.flows import reconcile_uploads
    from shared.logs import get_logger

    log = get_logger("serve")
    while not stop.wait(2):
        try:
            reconcile_uploads(get_db(), min_age_s=0, limit=100)
        except Exception as exc:  # keep the loop alive; the next pass retries
            log.warning("local upload sync failed: %s", exc, extra={"event": "local_upload_sync_failed"})


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
    with get_db().transaction() as conn:
        user = create_admin(conn, args.email, password, args.name)
    enrolment = user.pop("mfa")
    enrolment.pop("qr_svg", None)
    # The second factor is on from the start: the secret (or the otpauth URI, for an authenticator app)
    # and the recovery codes are printed this once and stored nowhere in clear.
    echo({"created": user, "mfa": enrolment})
    print(
        "two-factor is on: add the otpauth_uri (or the secret) to an authenticator app and keep the recovery codes; "
        "they are shown only now. Sign in with mfa_code.",
        file=sys.stderr,
    )
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    """Load the demo video catalogue (idempotent)."""
    from functions.videos.demo import seed_demo
    from shared.dbsetup import prepare

    prepare(get_settings())
    with get_db().transaction() as conn:
        seeded = seed_demo(conn)
    echo({"videos": seeded})
    return 0


def cmd_openapi(args: argparse.Namespace) -> int:
    """Write the OpenAPI document generated from the routes (docs/openapi.json)."""
    from shared.openapi import build, render

    target = ROOT / "docs" / "openapi.json"
    target.write_text(render(build(args.routers)))
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


def cmd_errors_doc(args: argparse.Namespace) -> int:
    """Write the error-code table generated from the catalogue (docs/errors.md)."""
    from shared.error_codes import render_markdown

    target = ROOT / "docs" / "errors.md"
    target.write_text(render_markdown())
    print(f"wrote {target.relative_to(ROOT)}")
    return 0


class _Parser(argparse.ArgumentParser):
    """argparse whose mistakes are one line on stderr (and exit 2), not a usage block."""

    def error(self, message: str) -> Any:
        self.exit(2, f"error: {message} (see: {self.prog} --help)\n")


def register(sub: Any) -> None:
    """The platform's own commands (each area registers its commands in its ``commands`` module)."""
    sub.add_parser("migrate", help=cmd_migrate.__doc__).set_defaults(run=cmd_migrate)
    p = sub.add_parser("serve", help=cmd_serve.__doc__)
    p.set_defaults(run=cmd_serve)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--no-seed", action="store_true", help="do not load the demo catalogue")
    p.add_argument("--no-scheduler", action="store_true", help="do not publish the scheduler jobs (infra/topology.yaml)")
    p.add_argument("--no-pubsub", action="store_true", help="do not start the Pub/Sub emulator (events run only by hand)")
    p.add_argument("--run-job", action="append", metavar="JOB", help="publish this scheduler job's message once at start-up (repeatable)")
    p = sub.add_parser("create-admin", help=cmd_create_admin.__doc__)
    p.set_defaults(run=cmd_create_admin)
    p.add_argument("--email", required=True)
    p.add_argument("--name", default="Administrator")
    sub.add_parser("seed-demo", help=cmd_seed_demo.__doc__).set_defaults(run=cmd_seed_demo)
    sub.add_parser("openapi", help=cmd_openapi.__doc__).set_defaults(run=cmd_openapi)
    sub.add_parser("errors-doc", help=cmd_errors_doc.__doc__).set_defaults(run=cmd_errors_doc)


# The one list of who adds commands: each entry is a ``register(subparsers)`` (no import side effects).
REGISTRIES = (
    register,
    ledger_commands.register,
    maintenance_commands.register,
    payouts_commands.register,
    privacy_commands.register,
)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python main.py", description="EarnPay operations")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for add_commands in REGISTRIES:
        add_commands(sub)
    return parser


def _one_line(exc: BaseException) -> str | None:
    """The operator's message for an expected failure, or None for a bug (which keeps its stack trace)."""
    from pg8000.exceptions import DatabaseError

    from shared.config import ConfigError
    from shared.errors import AppError
    from shared.localplatform import PlatformError

    if isinstance(exc, AppError):
        return exc.message
    if isinstance(exc, CommandError | PlatformError | ConfigError):
        return str(exc)
    if isinstance(exc, DatabaseError) and exc.args and isinstance(exc.args[0], dict):
        detail = exc.args[0]  # pg8000's fields: M message, C SQLSTATE
        return f"the database refused it: {detail.get('M', 'error')} (SQLSTATE {detail.get('C', '?')})"
    return None


def main(argv: list[str], routers: tuple[Router, ...] = ()) -> int:
    """Runs one command; ``routers`` are main.py's HTTP routers (what ``openapi`` documents)."""
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # pgserver's runtime dir notice
    configure()
    args = build_parser().parse_args(argv)
    args.routers = routers
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        message = _one_line(exc)
        if message is None:  # a bug, not a mistake: the stack trace goes to the log for whoever fixes it
            import logging

            logging.getLogger("cli").exception("command failed")
            message = f"{type(exc).__name__}: {exc} (stack trace in the log above)"
        print(f"error: {message}", file=sys.stderr)
        return 1
