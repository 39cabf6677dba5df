"""Every reason a partner callback can be refused with is in docs/partners.md's "Refusals" table, and the table
names no reason the code cannot give (partners read it to understand X-EarnPay-Callback-Reason)."""

from __future__ import annotations

import ast
import re

from shared.config import ROOT


def _given_reasons() -> set[str]:
    """The literal first argument of every Refused(...) and BadSignature(...) in functions/partners/."""
    found = set()
    for path in (ROOT / "functions" / "partners").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("Refused", "BadSignature") and node.args:
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    found.add(arg.value)
    return found


def _documented_reasons() -> set[str]:
    text = (ROOT / "docs" / "partners.md").read_text()
    table = text.split("## Refusals", 1)[1].split("\n\n", 2)[1]
    return {name for line in table.splitlines() if line.startswith("| `") for name in re.findall(r"`([a-z_]+)`", line.split("|")[1])}


def test_every_refusal_reason_is_documented_and_every_documented_one_exists() -> None:
    given = _given_reasons()
    assert {"bad_signature", "unknown_key", "stale_timestamp", "secret_store_unavailable"} <= given  # the scan works
    documented = _documented_reasons()
    assert given - documented == set(), "refusal reasons missing from docs/partners.md"
    assert documented - given == set(), "docs/partners.md documents reasons the code never gives"
