"""HTTP routes of the ``payouts`` function."""

from __future__ import annotations

from shared.http import Router

router = Router("payouts")
