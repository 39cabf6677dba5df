"""SQL of the notifications area: one named statement each."""

from shared.db import Query

INSERT = Query(
    "notification_insert",
    """INSERT INTO notifications (user_id, kind, data, email_to)
       VALUES (CAST(:user_id AS uuid), :kind, CAST(:data AS jsonb), :email_to)
       RETURNING id""",
)

EMAIL_OF = Query("notification_email_of", "SELECT email FROM users WHERE id = CAST(:user_id AS uuid) AND status <> 'erased'")

# The delivery's lock: a second delivery of the same message waits here, then finds email_sent_at set.
CLAIM = Query(
    "notification_claim",
    """SELECT n.id, n.user_id::text AS user_id, n.kind, n.data::text AS data, n.email_to, n.email_sent_at,
              u.display_name, u.status
         FROM notifications n JOIN users u ON u.id = n.user_id
        WHERE n.id = :id
          FOR UPDATE OF n""",
)

MARK_SENT = Query(
    "notification_mark_sent",
    "UPDATE notifications SET email_sent_at = now(), email_attempts = email_attempts + 1 WHERE id = :id",
)

COUNT_ATTEMPT = Query("notification_count_attempt", "UPDATE notifications SET email_attempts = email_attempts + 1 WHERE id = :id")

LIST_FOR_USER = Query(
    "notifications_for_user",
    """SELECT id, kind, data::text AS data, created_at, email_sent_at
         FROM notifications
        WHERE user_id = CAST(:user_id AS uuid) AND (CAST(:before AS bigint) IS NULL OR id < CAST(:before AS bigint))
        ORDER BY id DESC
        LIMIT :limit""",
)
