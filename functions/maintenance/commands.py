"""Maintenance commands: ``python main.py maintenance TASK [--option key=value ...]`` and
``python main.py restore-drill``."""

from __future__ import annotations

import argparse
import json
from typing import Any

from functions.maintenance.service import TASKS, run_task
from shared import error_codes as codes
from shared.errors import PermanentEventError
from shared.render import echo


def _options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs; values are read as JSON when they parse (numbers, true, lists), else text."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise PermanentEventError(f"--option wants key=value, got {pair!r}", code=codes.INVALID_TASK_OPTIONS)
        try:
            options[key] = json.loads(raw)
        except ValueError:
            options[key] = raw
    return options


def cmd_maintenance(args: argparse.Namespace) -> int:
    """Run one maintenance task now (the same code and lock as the scheduled run); exit 1 if it finds a problem."""
    try:
        outcome = run_task(args.task, _options(args.option or []))
    except PermanentEventError as exc:
        echo({"error": exc.reason, "code": exc.code})
        return 2
    echo(outcome)
    result = outcome["result"]
    return 1 if isinstance(result, dict) and result.get("ok") is False else 0


def cmd_restore_drill(args: argparse.Namespace) -> int:
    """Restore the database into a scratch copy, check it, drop it, print the report (exit 1 on a failed check)."""
    options: dict[str, Any] = {"force": True} if args.force else {}
    outcome = run_task("restore_drill", options)
    echo(outcome["result"] if outcome["ran"] else outcome)
    return 1 if outcome["result"].get("ok") is False else 0


def _maintenance_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=sorted(TASKS), help="; ".join(f"{t.name}: {t.summary}" for t in TASKS.values()))
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="a task option, e.g. --option batch_size=1000")


def register(sub: Any) -> None:
    """Adds this area's commands to the command line (``functions.cli.REGISTRIES``)."""
    p = sub.add_parser("maintenance", help=cmd_maintenance.__doc__)
    p.set_defaults(run=cmd_maintenance)
    _maintenance_arguments(p)
    p = sub.add_parser("restore-drill", help=cmd_restore_drill.__doc__)
    p.set_defaults(run=cmd_restore_drill)
    p.add_argument("--force", action="store_true", help="Cloud SQL: start a clone drill even if one ran this month")
