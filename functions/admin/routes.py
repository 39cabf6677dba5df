"""HTTP routes of the ``admin`` function."""

from __future__ import annotations

from shared.http import Router

router = Router("admin")
