"""Payout commands: ``python main.py process-payouts [--batch-size N] [--max-batches N]``."""

from __future__ import annotations

import argparse

from functions.cli import EXTRA_ARGUMENTS, _print, command
from functions.payouts import batch


@command
def cmd_process_payouts(args: argparse.Namespace) -> int:
    """Pay approved payouts now, in batches (what the payout-batches topic triggers every 15 minutes)."""
    reports = batch.process_payouts(batch_size=args.batch_size, max_batches=args.max_batches)
    _print({"batches": [r.as_dict() for r in reports]})
    return 0


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=int, default=None, help="payouts per batch (default PAYOUT_BATCH_SIZE, 1000)")
    p.add_argument("--max-batches", type=int, default=10, help="stop after this many batches")


EXTRA_ARGUMENTS.setdefault("process-payouts", []).append(_arguments)
