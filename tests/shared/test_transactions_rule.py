"""One rule for transactions (docs/architecture.md): a service takes a ``Conn``; only an entry point
or a workflow opens transactions. A workflow (a step outside the database between database steps)
is a function of an area's ``flows.py``, or the payout batch (``functions/payouts/batch.py``); nothing
else in functions/ takes a ``Database``."""

from __future__ import annotations

import ast

from shared.config import ROOT

WORKFLOWS = {"functions/payouts/batch.py"}
# Still being converted (issue 15, another change): remove the entry with the conversion.
NOT_YET: set[str] = set()


def _takes_a_database(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    args = [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]
    # a pool to open transactions on (a factory of pools for another server, the restore drill's, is not one)
    return any(a.annotation is not None and ast.unparse(a.annotation) in ("Database", "Database | None") for a in args)


def _database_takers(*, skip: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / "functions").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        if path.name == "flows.py" or where in skip:
            continue
        for node in ast.walk(ast.parse(path.read_text(), where)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _takes_a_database(node):
                found.append(f"{where}:{node.lineno} {node.name}")
    return found


def test_only_workflows_take_a_database() -> None:
    found = _database_takers(skip=WORKFLOWS | NOT_YET)
    assert found == [], "a service takes a Conn; the entry point (or a flows.py workflow) opens the transaction"


def test_the_exceptions_are_still_exceptions() -> None:
    converted = {where for where in NOT_YET if not any(f.startswith(f"{where}:") for f in _database_takers(skip=WORKFLOWS))}
    assert converted == set(), "converted: remove these from NOT_YET here and from docs/architecture.md's Transactions rule"


def test_the_scan_sees_the_workflows() -> None:
    flows = [p for p in (ROOT / "functions").rglob("flows.py")]
    assert len(flows) >= 4  # auth, kyc, notifications, payouts, privacy
    assert any(_takes_a_database(n) for p in flows for n in ast.walk(ast.parse(p.read_text())) if isinstance(n, ast.FunctionDef))
