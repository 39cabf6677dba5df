"""The trust-and-safety review queue in the console (real Chromium): an account in review is found in
the queue with its signals, its case is read, and compliance decides it with a reason, audited."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from shared.db import Query
from tests.helpers import PASSWORD, Api

AUDIT_BY_ACTOR = Query(
    "t_console_review_audit",
    "SELECT action, target_id, reason FROM audit_log WHERE actor_id = CAST(:a AS uuid) ORDER BY id",
    prepared=False,
)
RISK_STATE = Query("t_console_review_state", "SELECT risk_state FROM users WHERE id = CAST(:u AS uuid)", prepared=False)


def _code(user: Any) -> str | None:
    """The staff member's next two-factor code, where staff have two-factor."""
    return user.mfa_code() if getattr(user, "mfa_secret", None) else None


def test_an_account_in_review_is_decided_in_the_browser(open_console: Any, api: Api, owner_conn: Any) -> None:
    admin_user = api.staff(owner_conn, "admin")
    compliance_user = api.staff(owner_conn, "compliance")
    suspect = api.signup(name="Suspect Account")
    moved = api.post(
        f"/admin/risk/users/{suspect.id}/decision", user=admin_user, json={"decision": "review", "reason": "twenty signups from one prefix"}
    )
    assert moved.status_code == 200, moved.get_data(as_text=True)

    compliance = open_console("compliance")
    compliance.sign_in(compliance_user.email, PASSWORD, _code(compliance_user))
    page = compliance.page
    page.get_by_role("link", name="Review queue").click()
    queue = page.get_by_role("table", name=re.compile("Accounts in review"))
    expect(queue).to_contain_text(suspect.email)
    page.get_by_role("link", name=f"Open the case of {suspect.email}").click()
    case = page.get_by_role("region", name=re.compile("Case of"))
    expect(case).to_contain_text("review")
    expect(case.get_by_role("table", name="State history")).to_contain_text("twenty signups from one prefix")
    compliance.shot("10-review")
    violations = compliance.axe()
    assert violations == [], violations
    page.get_by_label("Clear (back to ok)", exact=True).check()
    page.get_by_label("Reason for the decision", exact=True).fill("a household: two people, two devices")
    page.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status").filter(has_text="Moved")).to_contain_text("Moved from review to ok")
    assert owner_conn.one(RISK_STATE, u=suspect.id)["risk_state"] == "ok"
    decisions = [
        a for a in owner_conn.all(AUDIT_BY_ACTOR, a=compliance_user.id) if a["action"].startswith("risk.") and a["target_id"] == suspect.id
    ]
    assert [(a["action"], a["reason"]) for a in decisions if a["action"] != "risk.case.view"] == [
        ("risk.clear", "a household: two people, two devices")
    ]
    # the user page shows the account's risk too
    compliance.go(f"#/users/{suspect.id}")
    expect(page.get_by_role("region", name="Risk")).to_contain_text("State ok")
    # support reads the queue but does not decide; the rules are on the admin's flags page
    admin = open_console("admin")
    admin.sign_in(admin_user.email, PASSWORD, _code(admin_user))
    admin.go("#/flags")
    rule = admin.page.get_by_role("form", name=re.compile(r"^Rule "))
    expect(rule.first).to_be_visible()
    accessible = admin.axe()
    assert accessible == [], accessible
    assert compliance.errors == [] and compliance.dialogs == [] and admin.errors == []
