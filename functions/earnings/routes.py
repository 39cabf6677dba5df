"""HTTP routes of the ``earnings`` function."""

from __future__ import annotations

from shared.http import Router

router = Router("earnings")
