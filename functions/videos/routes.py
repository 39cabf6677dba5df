"""HTTP routes of the ``videos`` function."""

from __future__ import annotations

from shared.http import Router

router = Router("videos")
