"""Users never reach another user's resources: every user route that takes an id, called with another
user's ids, is a 404 that shows nothing of theirs; and every list a user sees holds only their own rows.

The route list comes from every router, so a new user route with a path parameter and no case here fails.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from main import ROUTERS
from shared.db import Query
from tests.admin.support import VERIFY_KYC, fund
from tests.fixtures.gcs import Gcs
from tests.helpers import PASSWORD, Api, User
from tests.kyc.support import request_upload

PAYOUT_STATUS = Query("t_iso_payout_status", "SELECT status FROM payout_requests WHERE id = CAST(:id AS uuid)", prepared=False)
METHOD_DETAILS_KEPT = Query(
    "t_iso_method_kept", "SELECT details IS NOT NULL AND erased_at IS NULL FROM payout_methods WHERE id = CAST(:id AS uuid)", prepared=False
)
PROGRESS = Query(
    "t_iso_progress",
    "SELECT position_seconds FROM video_progress WHERE user_id = CAST(:u AS uuid) AND video_id = CAST(:v AS uuid)",
    prepared=False,
)


@dataclass
class Owned:
    """What the victim owns: the ids an intruder might try."""

    user: User
    payout_id: str
    method_id: str
    export_id: str
    video_id: str
    secrets: list[str]


def _victim(api: Api, owner_conn: Any, admin: User, gcs: Gcs) -> Owned:
    user = api.signup(name=f"Victim {uuid.uuid4().hex[:6]}")
    upload = request_upload(api, user)
    document_id = str(upload["document_id"])
    fund(api, owner_conn, admin, user, 30_000_000, "isolation test funds")
    paypal = f"victim-{uuid.uuid4().hex[:8]}@example.org"
    method = api.post("/payouts/methods", user=user, json={"type": "paypal", "email": paypal, "password": PASSWORD})
    assert method.status_code == 201, method.get_data(as_text=True)
    payout = api.post("/payouts/", user=user, json={"amount_cents": 1_500, "method_id": method.get_json()["id"], "password": PASSWORD})
    assert payout.status_code == 201, payout.get_data(as_text=True)
    export = api.post("/privacy/export", user=user)
    assert export.status_code == 200, export.get_data(as_text=True)
    video = api.post(
        "/admin/videos",
        user=admin,
        json={"title": "Isolation video", "duration_seconds": 900, "reward_micros": 1_000, "slug": f"iso-{uuid.uuid4().hex[:10]}"},
    ).get_json()
    hb = api.post(f"/progress/{video['id']}", user=user, json={"position_seconds": 0, "playing": True, "client_seq": 1})
    assert hb.status_code == 200, hb.get_data(as_text=True)
    return Owned(
        user=user,
        payout_id=payout.get_json()["id"],
        method_id=method.get_json()["id"],
        export_id=export.get_json()["id"],
        video_id=str(video["id"]),
        secrets=[user.id, user.email, paypal, payout.get_json()["id"], method.get_json()["id"], export.get_json()["id"], document_id],
    )


def _no_secret(resp: Any, owned: Owned, *, allow: tuple[str, ...] = ()) -> None:
    text = resp.get_data(as_text=True)
    for secret in owned.secrets:
        if secret not in allow:
            assert secret not in text, (secret, text)


# (function, method, pattern) -> a check run as the intruder against the victim's ids.
Check = Callable[[Api, User, Owned, Any], None]


def _get_payout(api: Api, me: User, owned: Owned, owner_conn: Any) -> None:
    resp = api.get(f"/payouts/{owned.payout_id}", user=me)
    assert resp.status_code == 404, resp.get_data(as_text=True)
    _no_secret(resp, owned, allow=(owned.payout_id,))


def _cancel_payout(api: Api, me: User, owned: Owned, owner_conn: Any) -> None:
    resp = api.post(f"/payouts/{owned.payout_id}/cancel", user=me)
    assert resp.status_code == 404, resp.get_data(as_text=True)
    _no_secret(resp, owned, allow=(owned.payout_id,))
    assert owner_conn.value(PAYOUT_STATUS, id=owned.payout_id) == "requested"


def _default_method(api: Api, me: User, owned: Owned, owner_conn: Any) -> None:
    resp = api.post(f"/payouts/methods/{owned.method_id}/default", user=me)
    assert resp.status_code == 404, resp.get_data(as_text=True)
    _no_secret(resp, owned, allow=(owned.method_id,))


def _remove_method(api: Api, me: User, owned: Owned, owner_conn: Any) -> None:
    resp = api.call("DELETE", f"/payouts/methods/{owned.method_id}", user=me)
    assert resp.status_code == 404, resp.get_data(as_text=True)
    _no_secret(resp, owned, allow=(owned.method_id,))
    assert owner_conn.value(METHOD_DETAILS_KEPT, id=owned.method_id) is True


def _get_export(api: Api, me: User, owned: Owned, owner_conn: Any) -> None:
    resp = api.get(f"/privacy/export/{owned.export_id}", user=me)
    assert resp.status_code == 404, resp.get_data(as_text=True)
    _no_secret(resp, owned, allow=(owned.export_id,))


def _get_progress(api: Api, me: User, owned: Owned, owner_conn: Any) -> None:
    # progress is keyed by (caller, video): the intruder sees only their own (none yet), never the victim's
    resp = api.get(f"/progress/{owned.video_id}", user=me)
    assert resp.status_code in (200, 404), resp.get_data(as_text=True)
    if resp.status_code == 200:
        assert resp.get_json().get("heartbeats", 0) in (0, None) or resp.get_json().get("started_at") is None, resp.get_json()
    _no_secret(resp, owned)


def _post_progress(api: Api, me: User, owned: Owned, owner_conn: Any) -> None:
    before = owner_conn.value(PROGRESS, u=owned.user.id, v=owned.video_id)
    resp = api.post(f"/progress/{owned.video_id}", user=me, json={"position_seconds": 5, "playing": True, "client_seq": 1})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert owner_conn.value(PROGRESS, u=owned.user.id, v=owned.video_id) == before
    _no_secret(resp, owned)


def _get_video(api: Api, me: User, owned: Owned, owner_conn: Any) -> None:
    # the catalogue is shared by design: a video is nobody's private resource
    assert api.get(f"/videos/{owned.video_id}", user=me).status_code == 200


CASES: dict[tuple[str, str, str], Check] = {
    ("payouts", "GET", "/{payout_id}"): _get_payout,
    ("payouts", "POST", "/{payout_id}/cancel"): _cancel_payout,
    ("payouts", "POST", "/methods/{method_id}/default"): _default_method,
    ("payouts", "DELETE", "/methods/{method_id}"): _remove_method,
    ("privacy", "GET", "/export/{export_id}"): _get_export,
    ("progress", "GET", "/{video_id}"): _get_progress,
    ("progress", "POST", "/{video_id}"): _post_progress,
    ("videos", "GET", "/{video_id}"): _get_video,
}


def _user_routes_with_ids() -> set[tuple[str, str, str]]:
    return {
        (name, route.method, route.pattern)
        for router in ROUTERS
        for name in [router.function]
        if name != "admin"
        for route in router.routes
        if route.auth == "user" and "{" in route.pattern
    }


def test_every_user_route_with_an_id_has_an_isolation_case() -> None:
    missing = _user_routes_with_ids() - set(CASES)
    assert not missing, f"user routes taking an id with no cross-user check in tests/admin/test_isolation.py: {sorted(missing)}"


def test_another_users_ids_are_404_and_lists_hold_only_ones_own(api: Api, owner_conn: Any, gcs: Gcs) -> None:
    admin = api.staff(owner_conn, "admin")
    owned = _victim(api, owner_conn, admin, gcs)
    intruder = api.signup()
    owner_conn.execute(VERIFY_KYC, u=intruder.id)
    for key in sorted(_user_routes_with_ids()):
        CASES[key](api, intruder, owned, owner_conn)
    # a made-up id behaves exactly like someone else's
    assert api.get(f"/payouts/{uuid.uuid4()}", user=intruder).status_code == 404
    assert api.get(f"/privacy/export/{uuid.uuid4()}", user=intruder).status_code == 404
    # every list and status a user can read shows none of the victim's rows
    for path in ("/payouts/", "/payouts/methods", "/kyc/", "/earnings/", "/earnings/stats", "/earnings/export", "/progress/", "/auth/me"):
        resp = api.get(path, user=intruder)
        assert resp.status_code == 200, (path, resp.get_data(as_text=True))
        _no_secret(resp, owned)
        assert owned.user.id not in json.dumps(resp.get_json())
