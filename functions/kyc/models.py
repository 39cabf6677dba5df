"""Request and response models of the kyc function, and the Cloud Storage object resource the finalize event carries."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from functions.auth.models import KycState
from shared.models import Body, Response
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


# --- responses ---------------------------------------------------------------------------------------
class UploadTicket(Response):
    """Where and how to PUT the document: a V4 signed URL and the headers that must go with it."""

    document_id: str
    kind: DocumentKind
    method: Literal["PUT"]
    upload_url: str
    headers: dict[str, str] = Field(description="send exactly these headers with the PUT")
    max_bytes: int
    expires_at: dt.datetime


class KycDocument(Response):
    id: str
    kind: DocumentKind
    content_type: DocumentContentType
    size_bytes: int
    status: Literal["awaiting_upload", "uploaded", "rejected", "deleted"]
    rejection_reason: str | None
    created_at: dt.datetime
    upload_expires_at: dt.datetime | None
    uploaded_at: dt.datetime | None


class LastDecision(Response):
    decision: Literal["verified", "rejected"]
    decided_at: dt.datetime


class KycStatus(Response):
    kyc_status: KycState
    last_decision: LastDecision | None
    items: list[KycDocument]
    next_cursor: str | None


class ReviewQueueItem(Response):
    user_id: str
    email: str
    display_name: str
    in_review_since: dt.datetime
    documents: int = Field(description="uploaded documents not yet reviewed")


class ReviewQueue(Response):
    items: list[ReviewQueueItem]
    next_cursor: str | None


class ReviewDocument(Response):
    """A received document as compliance staff see it, with a 5-minute download URL when uploaded."""

    id: str
    kind: DocumentKind
    content_type: DocumentContentType
    size_bytes: int
    status: Literal["uploaded", "rejected"]
    md5_hash: str | None
    rejection_reason: str | None
    reviewed: bool
    created_at: dt.datetime
    uploaded_at: dt.datetime | None
    download_url: str | None
    download_expires_at: dt.datetime | None


class ReviewDocuments(Response):
    user_id: str
    items: list[ReviewDocument]
    next_cursor: str | None


class KycDecision(Response):
    user_id: str
    kyc_status: Literal["verified", "rejected"]
    review_id: int
    decision: Literal["verified", "rejected"]
    reason: str
    reviewer_id: str
    decided_at: dt.datetime
    document_ids: list[str]
