"""HTTP routes of the ``progress`` function."""

from __future__ import annotations

from shared.http import Router

router = Router("progress")
