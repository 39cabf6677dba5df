"""Command-line commands of the privacy area (``register`` adds them; functions.cli lists it)."""

from __future__ import annotations

import argparse
from typing import Any

from shared.db import get_db
from shared.render import echo


def cmd_process_exports(args: argparse.Namespace) -> int:
    """Build every data export still queued (Pub/Sub disabled, down, or a message lost)."""
    from functions.privacy.flows import process_pending

    echo({"exports": process_pending(get_db())})
    return 0


def register(sub: Any) -> None:
    """Adds this area's commands to the command line (``functions.cli.REGISTRIES``)."""
    sub.add_parser("process-exports", help=cmd_process_exports.__doc__).set_defaults(run=cmd_process_exports)
