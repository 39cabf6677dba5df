"""Command-line commands of the privacy area (registered by importing this module from functions.commands)."""

from __future__ import annotations

import argparse

from functions.cli import _print, command
from shared.db import get_db


@command
def cmd_process_exports(args: argparse.Namespace) -> int:
    """Build every data export still queued (Pub/Sub disabled, down, or a message lost)."""
    from functions.privacy.service import process_pending

    _print({"exports": process_pending(get_db())})
    return 0
