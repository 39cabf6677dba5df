"""notify_many: a batch of notifications in two statements, each as ``notify`` would have written it."""

from __future__ import annotations

import json
from typing import Any

from functions.notifications.service import notify, notify_many
from shared.db import Query, get_db
from tests.helpers import Api

ROWS = Query(
    "t_notify_many_rows",
    """SELECT n.id, n.user_id::text AS user_id, n.kind, n.data::text AS data, n.email_to,
              (SELECT count(*) FROM outbox o WHERE o.key = 'notification:' || n.id AND o.topic = 'notifications'
                  AND o.payload = jsonb_build_object('notification_id', n.id)) AS events
         FROM notifications n WHERE n.id = ANY(CAST(:ids AS bigint[])) ORDER BY n.id""",
)
ERASE = Query("t_notify_many_erase", "UPDATE users SET status = 'erased' WHERE id = CAST(:u AS uuid)")


def test_each_item_gets_its_notification_address_and_one_email_event(api: Api, owner_conn: Any) -> None:
    a, b, gone = api.signup(), api.signup(), api.signup()
    owner_conn.execute(ERASE, u=gone.id)
    with get_db().transaction() as conn:
        ids = notify_many(
            conn,
            "payout_paid",
            [
                (a.id, {"payout_id": "p-a"}, None),
                (b.id, {"payout_id": "p-b"}, "elsewhere@example.com"),
                (gone.id, {"payout_id": "p-g"}, None),
            ],
        )
        quiet = notify(conn, a.id, "payout_paid", {"payout_id": "p-quiet"}, email=False)
    assert len(ids) == 3 and ids == sorted(ids)  # in the order given
    rows = {r["id"]: r for r in owner_conn.all(ROWS, ids="{" + ",".join(map(str, [*ids, quiet])) + "}")}
    first, second, erased = (rows[i] for i in ids)
    assert (first["user_id"], first["email_to"], first["events"]) == (a.id, a.email, 1)  # the account's address
    assert (second["user_id"], second["email_to"], second["events"]) == (b.id, "elsewhere@example.com", 1)  # its own
    assert (erased["email_to"], erased["events"]) == (None, 0)  # listed, never emailed
    assert (rows[quiet]["email_to"], rows[quiet]["events"]) == (None, 0)  # email=False
    assert [json.loads(rows[i]["data"])["payout_id"] for i in ids] == ["p-a", "p-b", "p-g"]
    assert {rows[i]["kind"] for i in [*ids, quiet]} == {"payout_paid"}


def test_nothing_to_notify_writes_nothing(owner_conn: Any) -> None:
    with get_db().transaction() as conn:
        assert notify_many(conn, "payout_paid", []) == []
