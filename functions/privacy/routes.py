"""HTTP routes of the ``privacy`` function."""

from __future__ import annotations

from shared.http import Router

router = Router("privacy")
