"""The demo video catalogue loaded by ``seed-demo`` and ``serve`` (replaced by the earning issue's catalogue)."""

from __future__ import annotations

from shared.db import Database


def seed_demo(db: Database) -> int:
    """Loads the demo catalogue; returns how many videos it holds."""
    return 0
