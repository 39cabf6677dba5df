"""Imports every area's command-line commands so ``functions.cli`` registers them."""

from functions.ledger import commands as ledger_commands  # noqa: F401
