"""Payout commands: ``python main.py process-payouts [--batch-size N] [--max-batches N]``."""

from __future__ import annotations

import argparse
from typing import Any

from functions.payouts import batch
from shared.render import echo


def cmd_process_payouts(args: argparse.Namespace) -> int:
    """Pay approved payouts now, in batches (what the payout-batches topic triggers every 15 minutes)."""
    reports = batch.process_payouts(batch_size=args.batch_size, max_batches=args.max_batches)
    echo({"batches": [r.as_dict() for r in reports]})
    return 0


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=None, help="payouts per batch (default PAYOUT_BATCH_SIZE, 1000)")
    p.add_argument("--max-batches", type=int, default=10, help="stop after this many batches")


def register(sub: Any) -> None:
    """Adds this area's commands to the command line (``functions.cli.REGISTRIES``)."""
    p = sub.add_parser("process-payouts", help=cmd_process_payouts.__doc__)
    p.set_defaults(run=cmd_process_payouts)
    _arguments(p)
