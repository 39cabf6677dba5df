"""HTTP routes of the ``kyc`` function."""

from __future__ import annotations

from shared.http import Router

router = Router("kyc")
