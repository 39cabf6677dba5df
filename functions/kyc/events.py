"""Event entry of the ``kyc`` area: GCS object-finalized events from the KYC bucket."""

from __future__ import annotations

from typing import Any


def kyc_document_uploaded(event: Any) -> None:
    raise NotImplementedError("kyc_document_uploaded is built in the paying-out issue")
