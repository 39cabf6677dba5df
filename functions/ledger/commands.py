"""Ledger commands: ``python main.py verify-ledger``."""

from __future__ import annotations

import argparse
import uuid

from functions.cli import EXTRA_ARGUMENTS, _print, command
from functions.ledger import service
from shared.db import get_read_db


@command
def cmd_verify_ledger(args: argparse.Namespace) -> int:
    """Verify every hash chain and that each balance equals the sum of its entries (exit 1 on a break)."""
    with get_read_db().connection() as conn:
        report = service.verify(conn, user_id=args.user)
    _print(report)
    return 0 if report["ok"] else 1


def _user_id(value: str) -> str:
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a user id (a UUID): {value!r}") from None


EXTRA_ARGUMENTS.setdefault("verify-ledger", []).append(
    lambda p: p.add_argument("--user", default=None, type=_user_id, help="only this user id")
)
