"""Request models of the kyc function, and the Cloud Storage object resource the finalize event carries."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models import Body
from shared.pagination import PageQuery

MAX_DOCUMENT_BYTES = 10 * 1024 * 1024  # 10 MiB: a phone photo or a scanned PDF, not a video

DocumentKind = Literal["passport", "national_id", "driving_licence", "selfie", "proof_of_address"]
DocumentContentType = Literal["image/jpeg", "image/png", "application/pdf"]


class DocumentUploadBody(Body):
    """``POST /kyc/documents``: what the user is about to upload."""

    kind: DocumentKind
    content_type: DocumentContentType
    size_bytes: Annotated[int, Field(ge=1, le=MAX_DOCUMENT_BYTES)]


class DocumentsQuery(PageQuery):
    """``GET /kyc/``: keyset pagination of the user's documents (``?limit=1..200&cursor=``)."""


class StorageObject(BaseModel):
    """The GCS object resource (JSON API shape) in a ``google.cloud.storage.object.v1.finalized`` event.

    int64 fields (size, generation) arrive as JSON strings; unknown fields are ignored.
    """

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    bucket: str = Field(min_length=3, max_length=222)
    name: str = Field(min_length=1, max_length=1024)
    content_type: str | None = Field(None, alias="contentType", max_length=255)
    size: int = Field(ge=0)
    generation: int = Field(ge=0)
    md5_hash: str | None = Field(None, alias="md5Hash", max_length=64)
    crc32c: str | None = Field(None, max_length=64)
    time_created: dt.datetime | None = Field(None, alias="timeCreated")
