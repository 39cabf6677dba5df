"""Imports every area's command-line commands so ``functions.cli`` registers them."""

from functions.ledger import commands as ledger_commands  # noqa: F401  # imported for its side effect: registers its commands
from functions.maintenance import commands as maintenance_commands  # noqa: F401  # imported for its side effect: registers its commands
from functions.payouts import commands as payouts_commands  # noqa: F401  # imported for its side effect: registers its commands
from functions.privacy import commands as privacy_commands  # noqa: F401  # imported for its side effect: registers its commands
