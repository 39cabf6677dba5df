"""Ledger commands: ``python main.py verify-ledger``."""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from functions.ledger import service
from shared.db import get_read_db
from shared.render import echo


def cmd_verify_ledger(args: argparse.Namespace) -> int:
    """Verify every hash chain and that each balance equals the sum of its entries (exit 1 on a break)."""
    with get_read_db().connection() as conn:
        report = service.verify(conn, user_id=args.user)
    echo(report)
    return 0 if report["ok"] else 1


def _user_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a user id (a UUID): {value!r}") from None


def register(sub: Any) -> None:
    """Adds this area's commands to the command line (``functions.cli.REGISTRIES``)."""
    p = sub.add_parser("verify-ledger", help=cmd_verify_ledger.__doc__)
    p.set_defaults(run=cmd_verify_ledger)
    p.add_argument("--user", default=None, type=_user_id, help="only this user id")
