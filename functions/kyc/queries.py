"""SQL of the kyc function: one named statement each."""

from shared.db import Query

# --- the user's side ------------------------------------------------------------------------------
# The user's row, locked: serialises a user's upload requests (the caps) and the event and the
# decision that move kyc_status. Every KYC transaction locks the user before any document row.
LOCK_USER = Query(
    "kyc_lock_user",
    "SELECT id::text AS id, kyc_status, status, role FROM users WHERE id = CAST(:user_id AS uuid) FOR UPDATE",
)

USER_KYC_STATUS = Query("kyc_user_status", "SELECT kyc_status FROM users WHERE id = CAST(:user_id AS uuid)")

UPLOAD_COUNTS = Query(
    "kyc_upload_counts",
    """SELECT count(*) FILTER (WHERE status = 'awaiting_upload' AND upload_expires_at > now()) AS open_urls,
              min(upload_expires_at) FILTER (WHERE status = 'awaiting_upload' AND upload_expires_at > now()) AS first_expiry,
              count(*) FILTER (WHERE created_at > now() - interval '1 day') AS last_day,
              min(created_at) FILTER (WHERE created_at > now() - interval '1 day') AS first_of_day
         FROM kyc_documents
        WHERE user_id = CAST(:user_id AS uuid) AND created_at > now() - interval '1 day'""",
)

INSERT_DOCUMENT = Query(
    "kyc_insert_document",
    """INSERT INTO kyc_documents (user_id, bucket, object_name, kind, content_type, size_bytes, upload_expires_at)
       VALUES (CAST(:user_id AS uuid), :bucket, :object_name, :kind, :content_type, :size_bytes,
               now() + make_interval(secs => :ttl_s))
       RETURNING id::text AS id, created_at, upload_expires_at""",
)

SET_PENDING = Query(
    "kyc_set_pending",
    """UPDATE users SET kyc_status = 'pending', updated_at = now()
        WHERE id = CAST(:user_id AS uuid) AND kyc_status IN ('none', 'rejected')""",
)

LAST_DECISION = Query(
    "kyc_last_decision",
    """SELECT decision, decided_at FROM kyc_reviews
        WHERE user_id = CAST(:user_id AS uuid) ORDER BY decided_at DESC, id DESC LIMIT 1""",
)

_DOCUMENT_COLUMNS = """id::text AS id, kind, content_type, size_bytes,
       CASE WHEN status = 'awaiting_upload' AND upload_expires_at <= now() THEN 'expired' ELSE status END AS status,
       rejection_reason, created_at, upload_expires_at, uploaded_at"""

USER_DOCUMENTS_FIRST = Query(
    "kyc_user_documents_first",
    f"""SELECT {_DOCUMENT_COLUMNS} FROM kyc_documents
         WHERE user_id = CAST(:user_id AS uuid)
         ORDER BY created_at DESC, id DESC LIMIT :limit""",
)

USER_DOCUMENTS_AFTER = Query(
    "kyc_user_documents_after",
    f"""SELECT {_DOCUMENT_COLUMNS} FROM kyc_documents
         WHERE user_id = CAST(:user_id AS uuid)
           AND (created_at, id) < (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid))
         ORDER BY created_at DESC, id DESC LIMIT :limit""",
)

# --- the finalize event ---------------------------------------------------------------------------
DOCUMENT_BY_OBJECT = Query(
    "kyc_document_by_object",
    """SELECT id::text AS id, user_id::text AS user_id, status, content_type, size_bytes, generation, review_id
         FROM kyc_documents WHERE bucket = :bucket AND object_name = :object_name""",
)

DOCUMENT_LOCATION = Query(
    "kyc_document_location",
    "SELECT bucket, object_name, status FROM kyc_documents WHERE id = CAST(:id AS uuid)",
)

# Documents still awaiting their upload a while after the URL was issued (an upload may have
# happened whose event was lost, or locally, where no event is sent at all).
AWAITING_UPLOADS = Query(
    "kyc_awaiting_uploads",
    """SELECT id::text AS id FROM kyc_documents
        WHERE status = 'awaiting_upload'
          AND created_at < now() - make_interval(secs => :min_age_s)
          AND upload_expires_at > now() - interval '1 day'
        ORDER BY created_at LIMIT :limit""",
    prepared=False,
)

MARK_UPLOADED = Query(
    "kyc_mark_uploaded",
    """UPDATE kyc_documents
          SET status = 'uploaded', generation = :generation, received_content_type = :content_type,
              received_size_bytes = :size, md5_hash = :md5_hash, crc32c = :crc32c, uploaded_at = now()
        WHERE id = CAST(:id AS uuid) AND status = 'awaiting_upload'
       RETURNING id::text AS id""",
)

# From 'awaiting_upload' (what arrived is not what was declared) or from an unreviewed 'uploaded'
# (the object was replaced after it was recorded).
MARK_REJECTED = Query(
    "kyc_mark_rejected",
    """UPDATE kyc_documents
          SET status = 'rejected', generation = :generation, received_content_type = :content_type,
              received_size_bytes = :size, md5_hash = :md5_hash, crc32c = :crc32c,
              uploaded_at = coalesce(uploaded_at, now()), rejected_at = now(), rejection_reason = :reason
        WHERE id = CAST(:id AS uuid)
          AND (status = 'awaiting_upload' OR (status = 'uploaded' AND review_id IS NULL))
       RETURNING id::text AS id""",
)

# A document arrived: the user's KYC goes to review (a verified user stays verified; a rejected one
# has sent new evidence, so it is reviewed again).
SET_IN_REVIEW = Query(
    "kyc_set_in_review",
    """UPDATE users SET kyc_status = 'in_review', updated_at = now()
        WHERE id = CAST(:user_id AS uuid) AND kyc_status IN ('none', 'pending', 'rejected')
       RETURNING kyc_status""",
)

# --- compliance -----------------------------------------------------------------------------------
_QUEUE = """SELECT u.id::text AS user_id, u.email, u.display_name, q.since AS in_review_since, q.documents
              FROM users u
              CROSS JOIN LATERAL (
                  SELECT coalesce(min(d.uploaded_at), u.updated_at) AS since, count(d.id) AS documents
                    FROM kyc_documents d
                   WHERE d.user_id = u.id AND d.status = 'uploaded' AND d.review_id IS NULL
              ) q
             WHERE u.kyc_status = 'in_review'"""

REVIEW_QUEUE_FIRST = Query(
    "kyc_review_queue_first",
    f"{_QUEUE} ORDER BY q.since, u.id LIMIT :limit",
)

REVIEW_QUEUE_AFTER = Query(
    "kyc_review_queue_after",
    f"""{_QUEUE} AND (q.since, u.id) > (CAST(:after_at AS timestamptz), CAST(:after_id AS uuid))
        ORDER BY q.since, u.id LIMIT :limit""",
)

DOCUMENTS_FOR_REVIEW = Query(
    "kyc_documents_for_review",
    """SELECT id::text AS id, bucket, object_name, kind, content_type, size_bytes, status, received_content_type,
              received_size_bytes, md5_hash, rejection_reason, review_id, created_at, uploaded_at
         FROM kyc_documents
        WHERE user_id = CAST(:user_id AS uuid) AND status IN ('uploaded', 'rejected')
        ORDER BY uploaded_at DESC, id DESC
        LIMIT 100""",
)

REVIEWER = Query("kyc_reviewer", "SELECT role, status FROM users WHERE id = CAST(:id AS uuid)")

INSERT_REVIEW = Query(
    "kyc_insert_review",
    """INSERT INTO kyc_reviews (user_id, decision, reason, reviewer_id)
       VALUES (CAST(:user_id AS uuid), :decision, :reason, CAST(:reviewer_id AS uuid))
       RETURNING id, decided_at""",
)

ATTACH_REVIEW = Query(
    "kyc_attach_review",
    """UPDATE kyc_documents SET review_id = :review_id
        WHERE user_id = CAST(:user_id AS uuid) AND status = 'uploaded' AND review_id IS NULL
       RETURNING id::text AS id""",
)

SET_DECISION = Query(
    "kyc_set_decision",
    """UPDATE users SET kyc_status = :decision, updated_at = now()
        WHERE id = CAST(:user_id AS uuid) AND kyc_status = 'in_review'""",
)
