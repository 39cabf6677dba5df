"""The role matrix: every admin route called with every role, allowed or refused exactly as docs/admin.md says.

The route list comes from the router itself, so a new admin route without a matrix entry fails here.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from functions.admin.routes import router
from shared.config import ROOT
from tests.helpers import Api, User, error_code

ROLES = ("user", "support", "finance", "compliance", "admin")
READERS = frozenset({"support", "finance", "compliance", "admin"})
FINANCE = frozenset({"finance", "admin"})
COMPLIANCE = frozenset({"compliance", "admin"})
ADMIN = frozenset({"admin"})

# (method, pattern) -> the roles allowed. docs/admin.md shows the same table.
MATRIX: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/users"): READERS,
    ("GET", "/users/{user_id}"): READERS,
    ("GET", "/users/{user_id}/ledger"): READERS,
    ("GET", "/users/{user_id}/account"): READERS,
    ("POST", "/users/{user_id}/withheld/{withheld_id}/grant"): ADMIN,
    ("POST", "/users/{user_id}/role"): ADMIN,
    ("POST", "/users/{user_id}/mfa/reset"): ADMIN,
    ("POST", "/adjustments"): ADMIN,
    ("POST", "/users/{user_id}/entries/{entry_id}/reverse"): FINANCE,
    ("GET", "/adjustments"): READERS,
    ("GET", "/payouts"): FINANCE,
    ("GET", "/payouts/{payout_id}"): FINANCE,
    ("POST", "/payouts/{payout_id}/approve"): FINANCE,
    ("POST", "/payouts/{payout_id}/reject"): FINANCE,
    ("GET", "/kyc"): COMPLIANCE,
    ("GET", "/kyc/{user_id}/documents"): COMPLIANCE,
    ("POST", "/kyc/{user_id}/decision"): COMPLIANCE,
    ("POST", "/videos"): ADMIN,
    ("GET", "/videos"): ADMIN,
    ("PATCH", "/videos/{video_id}"): ADMIN,
    ("GET", "/audit"): COMPLIANCE,
    ("GET", "/flags"): ADMIN,
    ("POST", "/flags/{key}"): ADMIN,
    ("GET", "/partners"): FINANCE,
    ("POST", "/partners"): ADMIN,
    ("POST", "/partners/{partner_id}"): ADMIN,
    ("POST", "/partners/{partner_id}/secrets"): ADMIN,
    ("POST", "/partners/{partner_id}/reversals"): FINANCE,
    ("GET", "/partners/{partner_id}/callbacks"): FINANCE,
    ("GET", "/partner-report"): FINANCE,
    ("GET", "/risk/queue"): READERS,
    ("GET", "/risk/users/{user_id}"): READERS,
    ("POST", "/risk/users/{user_id}/decision"): COMPLIANCE,
    ("GET", "/risk/rules"): READERS,
    ("PUT", "/risk/rules/{name}"): ADMIN,
}


def _routes() -> set[tuple[str, str]]:
    return {(r.method, r.pattern) for r in router.routes}


def test_every_admin_route_has_a_matrix_entry_and_declares_exactly_those_roles() -> None:
    routes = _routes()
    missing = routes - set(MATRIX)
    assert not missing, f"admin routes without a role-matrix entry (add them to MATRIX and docs/admin.md): {sorted(missing)}"
    assert not set(MATRIX) - routes, f"matrix entries without a route: {sorted(set(MATRIX) - routes)}"
    for route in router.routes:
        assert route.auth == "staff", f"{route.method} {route.pattern} must be staff-only"
        assert set(route.roles) == set(MATRIX[(route.method, route.pattern)]), (route.method, route.pattern)


def _request(method: str, pattern: str, target: User) -> tuple[str, dict[str, Any] | None, dict[str, str]]:
    """A valid request for the route (a body the model accepts), so only the role decides 403."""
    path = (
        pattern.replace("{user_id}", target.id)
        .replace("{payout_id}", str(uuid.uuid4()))
        .replace("{key}", "matrix_test_flag")
        .replace("{entry_id}", "1")
        .replace("{partner_id}", "matrix-partner")
        .replace("{name}", "matrix_no_such_rule")
    )
    path = path.replace("{withheld_id}", "1").replace("{video_id}", str(uuid.uuid4()))
    body: dict[str, Any] | None = None
    headers: dict[str, str] = {}
    if pattern.endswith("/role"):
        body = {"role": "user"}
    elif (method, pattern) == ("GET", "/adjustments"):
        path += f"?user_id={target.id}&idempotency_key=matrix-{uuid.uuid4().hex}"
    elif pattern == "/adjustments":
        body = {"user_id": target.id, "amount_micros": 1, "reason": "matrix test"}
        headers["Idempotency-Key"] = uuid.uuid4().hex
    elif pattern.endswith("/reject") or pattern.endswith("/reverse") or pattern.endswith("/grant"):
        body = {"reason": "matrix test"}
    elif pattern == "/risk/users/{user_id}/decision":
        body = {"decision": "watch", "reason": "matrix test"}
    elif pattern == "/risk/rules/{name}":
        body = {"threshold": 3, "window_minutes": 60, "weight": 10}
    elif pattern.endswith("/decision"):
        body = {"decision": "rejected", "reason": "matrix test"}
    elif pattern == "/videos":
        body = {"title": "Matrix test video", "duration_seconds": 60, "reward_micros": 1000, "active": False}
    elif pattern == "/partners" and method == "POST":
        body = {
            "id": "mx-" + uuid.uuid4().hex[:10],
            "kind": "offerwall",
            "name": "Matrix test",
            "reward_micros_per_unit": 1,
            "revenue_micros_per_unit": 1,
            "max_units": 1,
            "daily_cap_micros": 1,
            "clearing_hours": 0,
        }
    elif pattern == "/partners/{partner_id}":
        body = {"enabled": False}
    elif pattern.endswith("/secrets"):
        body = {"secret_hex": "00" * 16}
    elif pattern.endswith("/reversals"):
        body = {"transaction_id": "matrix", "reason": "matrix test"}
    elif pattern == "/partner-report":
        path += "?from=2026-01-01&to=2026-01-02"
    elif pattern == "/videos/{video_id}":
        body = {"active": False}
    elif pattern == "/flags/{key}":
        body = {"enabled": False, "rollout_percent": 0, "description": "matrix test"}
    return "/admin" + path, body, headers


def test_every_role_gets_exactly_the_routes_of_the_matrix(api: Api, owner_conn: Any) -> None:
    callers = {"user": api.signup(name="matrix user")}
    for role in ROLES[1:]:
        callers[role] = api.staff(owner_conn, role)
    target = api.signup(name="matrix target")
    results: dict[tuple[str, str, str], int] = {}
    for method, pattern in sorted(_routes()):
        allowed = MATRIX.get((method, pattern), frozenset())
        for role in ROLES:
            path, body, headers = _request(method, pattern, target)
            resp = api.call(method, path, user=callers[role], json=body, headers=headers)
            results[(method, pattern, role)] = resp.status_code
            if role in allowed:
                assert resp.status_code not in (401, 403, 405, 500), (method, pattern, role, resp.get_data(as_text=True))
            else:
                assert resp.status_code == 403, (method, pattern, role, resp.get_data(as_text=True))
                assert error_code(resp) == "role_forbidden"
    # what the server did, read from its answers, is what docs/admin.md tells staff (an independent source)
    let_through = {(m, p): frozenset(r for r in ROLES if results[(m, p, r)] != 403) for m, p in _routes()}
    assert let_through == _documented_matrix()
    assert all(roles and "user" not in roles for roles in let_through.values()), "every route lets some staff through, never a user"


def _documented_matrix() -> dict[tuple[str, str], frozenset[str]]:
    """The role table of docs/admin.md: route cell (one or more `METHOD /path`) -> roles ticked."""
    table: dict[tuple[str, str], frozenset[str]] = {}
    header: list[str] = []
    for line in (ROOT / "docs" / "admin.md").read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells[:1] == ["route"]:
            header = cells
        elif header and cells and cells[0].startswith("`"):
            roles = frozenset(role for role, cell in zip(header[1:], cells[1:], strict=True) if cell == "✓")
            for method, path in re.findall(r"`(GET|POST|PUT|PATCH|DELETE) (/[^` ?]*)", cells[0]):
                table[(method, path)] = roles
        elif header and not cells:
            header = []
    return table


def test_no_session_is_401_on_every_admin_route(api: Api) -> None:
    target = api.signup()
    for method, pattern in sorted(_routes()):
        path, body, headers = _request(method, pattern, target)
        resp = api.call(method, path, json=body, headers=headers)
        assert resp.status_code == 401, (method, path, resp.get_data(as_text=True))
