"""One error catalogue (shared/error_codes.py): every code the code raises is in it, with the status
it is raised with, and documented in docs/errors.md; SQLSTATEs are named only in shared/db.py."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import main  # noqa: F401  # loads every area, so every AppError subclass exists
from shared import error_codes, errors
from shared.config import ROOT
from shared.db import DATABASE_ERRORS, EP_INSUFFICIENT_FUNDS, EP_UNKNOWN_VIDEO, domain_error
from shared.error_codes import CATALOGUE, render_markdown

SOURCES = sorted([*(ROOT / "functions").rglob("*.py"), *(ROOT / "shared").rglob("*.py")])


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


ERROR_CLASSES = {cls.__name__: cls for cls in _subclasses(errors.AppError)} | {"AppError": errors.AppError}


def _code_value(node: ast.expr) -> str | None:
    """The code a ``code=`` argument names: a literal, or a catalogue constant (``codes.VIDEO_NOT_FOUND``)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "codes":
        value = getattr(error_codes, node.attr, None)
        return value if isinstance(value, str) else f"<no constant codes.{node.attr}>"
    return None


def _raised_codes() -> list[tuple[str, str, int, str]]:
    """(code, callee name, line, file) for every ``...(code="literal")`` or ``...(code=codes.NAME)`` call
    in functions/ and shared/."""
    out = []
    for path in SOURCES:
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call):
                callee = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "?")
                for kw in node.keywords:
                    code = _code_value(kw.value) if kw.arg == "code" else None
                    if code is not None:
                        out.append((code, callee, node.lineno, str(path.relative_to(ROOT))))
    return out


# Files allowed to pass codes as string literals: none since issue 15 converted every area. A code is
# named by its constant everywhere: code=codes.VIDEO_NOT_FOUND.
LITERAL_CODES_LEFT: set[str] = set()


def test_every_raised_code_is_catalogued_with_the_status_it_is_raised_with() -> None:
    raised = _raised_codes()
    assert len(raised) > 50  # the scan sees the code (sanity)
    missing = sorted({(code, where) for code, _, _, where in raised if code not in CATALOGUE})
    assert missing == [], f"codes missing from shared/error_codes.py: {missing}"
    wrong = [
        (code, callee, f"{where}:{line}", ERROR_CLASSES[callee].status, CATALOGUE[code].status)
        for code, callee, line, where in raised
        if callee in ERROR_CLASSES and ERROR_CLASSES[callee].status != CATALOGUE[code].status
    ]
    assert wrong == [], f"raised with another status than the catalogue's: {wrong}"


def _literal_codes(path: Path) -> list[str]:
    """Each code written as a string literal in ``path``: a ``code="..."`` argument, or a class's default
    ``code = "..."``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.keyword) and node.arg == "code" and isinstance(node.value, ast.Constant):
            found.append(f"{node.value.lineno} {node.value.value!r}")
        if isinstance(node, ast.ClassDef):
            found += [
                f"{stmt.lineno} {stmt.value.value!r}"
                for stmt in node.body
                if isinstance(stmt, ast.Assign)
                and isinstance(stmt.value, ast.Constant)
                and any(isinstance(t, ast.Name) and t.id == "code" for t in stmt.targets)
            ]
    return found


def test_codes_are_named_by_their_constants() -> None:
    literal = {
        where: found
        for path in SOURCES
        if (where := str(path.relative_to(ROOT))) not in LITERAL_CODES_LEFT and (found := _literal_codes(path))
    }
    assert literal == {}, f"name each code by its constant in shared/error_codes.py (code=codes.X): {literal}"
    converted = sorted(f for f in LITERAL_CODES_LEFT if not (ROOT / f).is_file() or not _literal_codes(ROOT / f))
    assert converted == [], f"no literal codes left: remove them from LITERAL_CODES_LEFT: {converted}"


def test_every_error_class_default_code_is_catalogued_with_its_status() -> None:
    for name, cls in ERROR_CLASSES.items():
        assert cls.code in CATALOGUE, f"{name}.code {cls.code!r} is not in the catalogue"
        assert CATALOGUE[cls.code].status == cls.status, name


def test_the_database_table_maps_to_catalogued_codes() -> None:
    for state, (error, code, _) in DATABASE_ERRORS.items():
        assert CATALOGUE[code].status == error.status, state


def test_every_catalogued_code_is_used_and_documented() -> None:
    text = "\n".join(p.read_text() for p in SOURCES if p.name != "error_codes.py")
    unused = sorted(c for c in CATALOGUE if f'"{c}"' not in text and f"codes.{c.upper()}" not in text)
    assert unused == [], f"catalogued codes nothing raises (remove them): {unused}"
    assert (ROOT / "docs" / "errors.md").read_text() == render_markdown(), "docs/errors.md is stale: run `python main.py errors-doc`"
    assert all(meaning.strip() for _, meaning in CATALOGUE.values())


def test_sqlstates_are_named_only_in_shared_db() -> None:
    literal = re.compile(r"""["'](EP[0-9]{3}|[0-9]{2}[0-9A-Z]{3})["']""")
    others = [p for p in SOURCES if p != ROOT / "shared" / "db.py"]
    found = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in others for m in literal.finditer(p.read_text())]
    assert found == [], f"name SQLSTATEs in shared/db.py and import them: {found}"


def test_domain_error_maps_only_the_expected_states() -> None:
    from pg8000.exceptions import DatabaseError

    exc = DatabaseError({"C": EP_INSUFFICIENT_FUNDS, "M": "overdraw"})
    err = domain_error(exc, (EP_INSUFFICIENT_FUNDS,), details={"x": 1})
    assert isinstance(err, errors.InsufficientFunds)
    assert (err.status, err.code, err.details) == (409, "insufficient_funds", {"x": 1})
    assert domain_error(exc, (EP_UNKNOWN_VIDEO,)) is None  # not a state this caller expects: stays a database error
    assert domain_error(ValueError("x"), (EP_INSUFFICIENT_FUNDS,)) is None


def test_an_internal_error_is_a_class_not_a_changed_instance() -> None:
    source = "\n".join(p.read_text() for p in SOURCES)
    assert not re.search(r"\.status\s*=\s*\d", source), "make an error class with its status instead of changing an instance"
    assert (errors.InternalError().status, errors.InternalError().code) == (500, "internal_error")
    assert not hasattr(errors, "TransientEventError")
    assert Path(errors.__file__).is_file()
