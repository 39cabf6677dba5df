"""SQL of the notifications area: one named statement each."""

from shared.db import Query

# Many notifications of one kind in one statement (a payout batch's): each row's address is its own
# email_to, else the account's (none for an erased account); with email false, no address at all.
INSERT_MANY = Query(
    "notification_insert_many",
    """INSERT INTO notifications (user_id, kind, data, email_to)
       SELECT CAST(n->>'user_id' AS uuid), :kind, n->'data',
              CASE WHEN :email THEN coalesce(n->>'email_to', u.email) END
         FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS t(n, ord)
         LEFT JOIN users u ON u.id = CAST(n->>'user_id' AS uuid) AND u.status <> 'erased'
        ORDER BY t.ord
       RETURNING id, email_to""",
)

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
