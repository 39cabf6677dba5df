-- KYC: identity documents uploaded straight to a private Cloud Storage bucket, and compliance
-- decisions.
--
-- A document row is created when the user asks for an upload URL (status 'awaiting_upload'); the
-- bucket's object-finalized event fills in what actually arrived ('uploaded', or 'rejected' when it
-- differs from what was declared). users.kyc_status (0001) carries the user's state:
--   none/rejected --(upload URL issued)--> pending --(a document arrived)--> in_review
--   in_review --(compliance decision)--> verified | rejected
-- Decisions are an append-only history in kyc_reviews; the app role may insert but never change one.

-- Object names are "kyc/" + 32 random hex digits: they reveal nothing about the user (not the user
-- id, not the document kind, not a date), so a leaked bucket listing or access log says nothing.
CREATE TABLE kyc_documents (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    user_id               UUID NOT NULL REFERENCES users (id),
    bucket                TEXT NOT NULL CHECK (length(bucket) BETWEEN 3 AND 222),
    object_name           TEXT NOT NULL CHECK (object_name ~ '^kyc/[0-9a-f]{32}$'),
    kind                  TEXT NOT NULL
                          CHECK (kind IN ('passport', 'national_id', 'driving_licence', 'selfie', 'proof_of_address')),
    -- what the user declared; the signed URL binds both, and the event checks them again
    content_type          TEXT NOT NULL CHECK (content_type IN ('image/jpeg', 'image/png', 'application/pdf')),
    size_bytes            BIGINT NOT NULL CHECK (size_bytes BETWEEN 1 AND 10485760),
    status                TEXT NOT NULL DEFAULT 'awaiting_upload'
                          CHECK (status IN ('awaiting_upload', 'uploaded', 'rejected', 'deleted')),
    upload_expires_at     TIMESTAMPTZ NOT NULL,
    -- what arrived, from the finalize event (GCS's own checksums, base64 as GCS reports them)
    generation            BIGINT,
    received_content_type TEXT CHECK (length(received_content_type) <= 255),
    received_size_bytes   BIGINT CHECK (received_size_bytes >= 0),
    md5_hash              TEXT CHECK (length(md5_hash) <= 64),
    crc32c                TEXT CHECK (length(crc32c) <= 64),
    rejection_reason      TEXT CHECK (length(rejection_reason) BETWEEN 1 AND 500),
    -- the compliance decision that considered this document (NULL: not reviewed yet)
    review_id             BIGINT,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    uploaded_at           TIMESTAMPTZ,
    rejected_at           TIMESTAMPTZ,
    deleted_at            TIMESTAMPTZ,
    CHECK (upload_expires_at > created_at),
    -- an uploaded document always carries what the event told us
    CHECK (status <> 'uploaded' OR (uploaded_at IS NOT NULL AND generation IS NOT NULL AND received_size_bytes IS NOT NULL)),
    CHECK ((status = 'rejected') = (rejected_at IS NOT NULL AND rejection_reason IS NOT NULL) OR status = 'deleted'),
    CHECK ((status = 'deleted') = (deleted_at IS NOT NULL)),
    CHECK (review_id IS NULL OR uploaded_at IS NOT NULL)
);
CREATE UNIQUE INDEX idx_kyc_documents_object ON kyc_documents (bucket, object_name);
-- the user's own list (GET /kyc/), newest first, keyset-paginated
CREATE INDEX idx_kyc_documents_user ON kyc_documents (user_id, created_at DESC, id DESC);
-- the per-user cap on open upload URLs
CREATE INDEX idx_kyc_documents_awaiting ON kyc_documents (user_id, upload_expires_at) WHERE status = 'awaiting_upload';
-- the review queue: documents that arrived and no decision has considered yet
CREATE INDEX idx_kyc_documents_unreviewed ON kyc_documents (user_id, uploaded_at) WHERE status = 'uploaded' AND review_id IS NULL;

GRANT SELECT, INSERT ON kyc_documents TO earnpay_app;
-- Only the columns the event, the decision and an erasure/retention sweep change; never the
-- user, the object name or what was declared.
GRANT UPDATE (status, generation, received_content_type, received_size_bytes, md5_hash, crc32c, rejection_reason,
              review_id, uploaded_at, rejected_at, deleted_at) ON kyc_documents TO earnpay_app;

-- Compliance decisions: who decided what about whom, when and why. Append-only for the app.
CREATE TABLE kyc_reviews (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     UUID NOT NULL REFERENCES users (id),
    decision    TEXT NOT NULL CHECK (decision IN ('verified', 'rejected')),
    reason      TEXT NOT NULL CHECK (length(reason) BETWEEN 1 AND 500 AND reason = btrim(reason)),
    reviewer_id UUID NOT NULL REFERENCES users (id),
    decided_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- nobody decides on their own identity
    CHECK (reviewer_id <> user_id)
);
CREATE INDEX idx_kyc_reviews_user ON kyc_reviews (user_id, decided_at DESC, id DESC);
CREATE INDEX idx_kyc_reviews_reviewer ON kyc_reviews (reviewer_id, decided_at DESC);

GRANT SELECT, INSERT ON kyc_reviews TO earnpay_app;

ALTER TABLE kyc_documents
    ADD CONSTRAINT kyc_documents_review_fk FOREIGN KEY (review_id) REFERENCES kyc_reviews (id);
CREATE INDEX idx_kyc_documents_review ON kyc_documents (review_id) WHERE review_id IS NOT NULL;
