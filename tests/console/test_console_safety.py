"""The staff console's promises beyond the happy path, in real Chromium: user-typed text is text (a
user named ``<img src=x onerror=alert(1)>`` runs nothing), the staff token is kept in memory only,
the session ends on the staff idle timeout and on sign-out, a double click posts an adjustment once,
a selection of payouts is approved one audited request (and one Idempotency-Key) each, errors show
the API's message, long lists page, the catalogue is edited, and the pages work from the keyboard.
"""

from __future__ import annotations

import re
import urllib.request
import uuid
from typing import Any

from playwright.sync_api import expect

from functions.auth.queries import SET_ROLE
from shared.db import Query
from tests.helpers import PASSWORD, Api, User

XSS = "<img src=x onerror=alert(1)>"
AUDIT_BY_ACTOR = Query(
    "t_console_safety_audit",
    "SELECT action, target_id FROM audit_log WHERE actor_id = CAST(:a AS uuid) ORDER BY id",
    prepared=False,
)
ADJUSTMENTS_OF = Query(
    "t_console_safety_adjustments",
    "SELECT amount FROM earnings WHERE user_id = CAST(:u AS uuid) AND type = 'adjustment' ORDER BY seq",
    prepared=False,
)
AGE_SESSIONS = Query(
    "t_console_safety_age",
    "UPDATE sessions SET last_seen_at = now() - interval '31 minutes' WHERE user_id = CAST(:u AS uuid) AND revoked_at IS NULL",
    prepared=False,
)
LIVE_SESSIONS = Query(
    "t_console_safety_live",
    "SELECT count(*) AS n FROM sessions WHERE user_id = CAST(:u AS uuid) AND revoked_at IS NULL",
    prepared=False,
)
KEYS_OF = Query(
    "t_console_safety_keys",
    "SELECT key FROM idempotency_keys WHERE user_id = CAST(:u AS uuid) ORDER BY key",
    prepared=False,
)
AGE_STEP_UP = Query(
    "t_console_safety_age_step_up",
    "UPDATE sessions SET step_up_at = now() - interval '10 minutes' WHERE user_id = CAST(:u AS uuid) AND revoked_at IS NULL",
    prepared=False,
)
VERIFY_KYC = Query("t_console_safety_kyc", "UPDATE users SET kyc_status = 'verified' WHERE id = CAST(:u AS uuid)", prepared=False)


def _credit(api: Api, admin: User, user_id: str, micros: int, reason: str = "console test") -> None:
    resp = api.post(
        "/admin/adjustments",
        user=admin,
        json={"user_id": user_id, "amount_micros": micros, "reason": reason},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert resp.status_code == 201, resp.get_data(as_text=True)


def test_user_typed_text_is_rendered_as_text_and_nothing_runs(open_console: Any, api: Api, owner_conn: Any) -> None:
    admin_user = api.staff(owner_conn, "admin")
    victim = api.signup(name=XSS)
    _credit(api, admin_user, victim.id, 1_000, reason="<script>alert(2)</script> typed by staff")
    admin = open_console("admin")
    admin.sign_in(admin_user.email, PASSWORD, admin_user.mfa_code())
    page = admin.page
    page.get_by_label("Search by", exact=True).select_option("email")
    page.get_by_label("Search for", exact=True).fill(victim.email)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell", name=XSS, exact=True)).to_be_visible()
    page.get_by_role("link", name=victim.email).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(XSS)
    expect(page.get_by_role("table", name=re.compile("Ledger entries"))).to_contain_text("<script>alert(2)</script>")
    admin.go("#/audit")
    expect(page.get_by_role("table", name="Staff actions, newest first")).to_contain_text("<script>alert(2)</script>")
    page.wait_for_timeout(300)  # an onerror handler would have run by now
    assert page.evaluate("() => document.querySelectorAll('img[src=\"x\"], script:not([src])').length") == 0
    assert admin.dialogs == [] and admin.errors == []


def test_the_token_lives_in_memory_only_and_the_session_ends_on_timeout_and_sign_out(
    open_console: Any, api: Api, owner_conn: Any, console_server: Any
) -> None:
    # each sign-in below is a fresh staff member (an authenticator code is good once per 30 s step)
    support_user = api.staff(owner_conn, "support")
    support = open_console("support")
    support.sign_in(support_user.email, PASSWORD, support_user.mfa_code())
    page = support.page
    stored = page.evaluate("() => [localStorage.length, sessionStorage.length, document.cookie, indexedDB ? 'idb' : '']")
    assert stored[:3] == [0, 0, ""] and support.context.cookies() == []
    page.reload()  # memory only: a reload signs out
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    # the staff idle timeout (30 minutes) passes: the next request ends the session in the page
    idle_user = api.staff(owner_conn, "support")
    support.sign_in(idle_user.email, PASSWORD, idle_user.mfa_code())
    owner_conn.execute(AGE_SESSIONS, u=idle_user.id)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("Your session ended")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()

    # sign-out revokes the session on the server
    leaving_user = api.staff(owner_conn, "support")
    support.sign_in(leaving_user.email, PASSWORD, leaving_user.mfa_code())
    live = owner_conn.one(LIVE_SESSIONS, u=leaving_user.id)["n"]
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert")).to_contain_text("You signed out")
    assert owner_conn.one(LIVE_SESSIONS, u=leaving_user.id)["n"] == live - 1

    # a plain user cannot use the console
    plain = api.signup()
    support.open()
    page.get_by_label("Email", exact=True).fill(plain.email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("not a staff account")

    # served like the CDN serves it: strict CSP, index revalidated, hashed assets immutable
    with urllib.request.urlopen(f"{console_server.url}/console/", timeout=10) as resp:  # noqa: S310  # the local test server
        csp = resp.headers["Content-Security-Policy"]
        html = resp.read().decode()
        assert resp.headers["Cache-Control"] == "no-cache"
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "default-src 'none'" in csp
    asset = re.search(r'src="\./(assets/index-[\w-]+\.js)"', html)
    assert asset and "<script>" not in html
    with urllib.request.urlopen(f"{console_server.url}/console/{asset.group(1)}", timeout=10) as resp:  # noqa: S310
        assert resp.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert support.csp_violations == [] and support.errors == []


def test_a_double_click_posts_an_adjustment_once_and_errors_show_the_api_message(open_console: Any, api: Api, owner_conn: Any) -> None:
    admin_user = api.signup(name="Adjusting Admin")
    owner_conn.execute(SET_ROLE, id=admin_user.id, role="admin")
    target = api.signup()
    admin = open_console("admin")
    admin.sign_in(admin_user.email, PASSWORD, enrolled=False)
    authenticator = admin.enrol()
    page = admin.page
    admin.go("#/adjustments")
    # the last code was entered more than 5 minutes ago: the money move asks for a fresh one
    owner_conn.execute(AGE_STEP_UP, u=admin_user.id)
    page.get_by_label("User id", exact=True).fill(target.id)
    page.get_by_label("Amount in dollars (negative for a debit)", exact=True).fill("1.50")
    page.get_by_label("Reason", exact=True).fill("goodwill")
    page.get_by_role("button", name="Post adjustment").dblclick()
    dialog = page.get_by_role("dialog", name="Confirm with your two-factor code")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_label("Two-factor code", exact=True)).to_be_focused()
    dialog.get_by_label("Two-factor code", exact=True).fill("000000")
    dialog.get_by_role("button", name="Confirm").click()
    expect(dialog.get_by_role("alert")).to_be_visible()  # a wrong code: the API's refusal, the dialog stays
    dialog.get_by_label("Two-factor code", exact=True).fill(authenticator.code())
    dialog.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status").filter(has_text="Posted")).to_contain_text("Posted $1.50")
    expect(dialog).to_have_count(0)
    page.wait_for_timeout(300)
    assert [r["amount"] for r in owner_conn.all(ADJUSTMENTS_OF, u=target.id)] == [1_500_000]
    # the next form has a new key: a second adjustment is a new entry
    page.get_by_label("User id", exact=True).fill(target.id)
    page.get_by_label("Amount in dollars (negative for a debit)", exact=True).fill("-0.5")
    page.get_by_label("Reason", exact=True).fill("correction")
    page.get_by_role("button", name="Post adjustment").click()
    expect(page.get_by_role("status").filter(has_text="Posted")).to_contain_text("Posted -$0.50")
    assert [r["amount"] for r in owner_conn.all(ADJUSTMENTS_OF, u=target.id)] == [1_500_000, -500_000]
    # a debit beyond the balance: the API's message and code, shown as they are
    page.get_by_label("User id", exact=True).fill(target.id)
    page.get_by_label("Amount in dollars (negative for a debit)", exact=True).fill("-100")
    page.get_by_label("Reason", exact=True).fill("too much")
    page.get_by_role("button", name="Post adjustment").click()
    expect(page.get_by_role("alert")).to_contain_text("insufficient_funds")
    assert len(owner_conn.all(ADJUSTMENTS_OF, u=target.id)) == 2


def test_a_selection_of_payouts_is_approved_one_audited_request_each(open_console: Any, api: Api, owner_conn: Any) -> None:
    admin_user = api.staff(owner_conn, "admin")
    finance_user = api.staff(owner_conn, "finance")
    payout_ids = []
    customers = []
    for n in range(3):
        user = api.signup(name=f"Payee {n}")
        owner_conn.execute(VERIFY_KYC, u=user.id)
        _credit(api, admin_user, user.id, 30_000_000)
        method = api.post("/payouts/methods", user=user, json={"type": "paypal", "email": f"payee{n}@example.org", "password": PASSWORD})
        body = {"amount_cents": 1_000 + n, "password": PASSWORD, "method_id": method.get_json()["id"]}
        payout = api.post("/payouts/", user=user, json=body)
        assert payout.status_code == 201, payout.get_data(as_text=True)
        payout_ids.append(payout.get_json()["id"])
        customers.append(user)
    finance = open_console("finance")
    finance.sign_in(finance_user.email, PASSWORD, finance_user.mfa_code())
    page = finance.page
    page.get_by_role("link", name="Payouts").click()
    for user in customers[:2]:
        page.get_by_role("checkbox", name=re.compile(f"to {re.escape(user.email)}")).check()
    expect(page.get_by_text("2 selected.")).to_be_visible()
    page.get_by_role("button", name="Approve selected").click()
    expect(page.locator(".outcomes li")).to_have_count(2)
    expect(page.locator(".outcomes")).not_to_contain_text("Error")
    # the third is rejected with a reason
    page.get_by_role("checkbox", name=re.compile(f"to {re.escape(customers[2].email)}")).check()
    page.get_by_label("Rejection reason", exact=True).fill("destination does not match the account holder")
    page.get_by_role("button", name="Reject selected").click()
    expect(page.locator(".outcomes")).to_contain_text("rejected")
    audit = owner_conn.all(AUDIT_BY_ACTOR, a=finance_user.id)
    decisions = [(a["action"], a["target_id"]) for a in audit if a["action"].startswith("payout.")]
    expected = [("payout.approve", payout_ids[0]), ("payout.approve", payout_ids[1]), ("payout.reject", payout_ids[2])]
    assert sorted(decisions) == sorted(expected)
    assert len(owner_conn.all(KEYS_OF, u=finance_user.id)) == 3, "one Idempotency-Key per payout"

    # finance claws back a credit that has not cleared yet, from the user's page
    from functions.ledger import service as ledger
    from shared.db import get_db

    with get_db().transaction() as conn:  # a video reward waits in pending for its clearing period
        posted = ledger.post(
            conn, user_id=customers[0].id, type="video_reward", amount=2_500, idempotency_key="console-reverse", source="test"
        )
    finance.go(f"#/users/{customers[0].id}")
    page.get_by_label("Entry id to reverse", exact=True).fill(str(posted.entry_id))
    page.get_by_label("Reason for the reversal", exact=True).fill("views from a bot farm")
    page.get_by_role("button", name="Reverse").click()
    expect(page.get_by_role("status").filter(has_text="reversed")).to_contain_text(f"Entry {posted.entry_id} reversed: -$0.0025")
    expect(page.get_by_role("table", name=re.compile("Ledger entries"))).to_contain_text("reversal")
    assert "ledger.reversal" in [a["action"] for a in owner_conn.all(AUDIT_BY_ACTOR, a=finance_user.id)]
    assert finance.errors == []


def test_long_lists_page_the_catalogue_is_edited_and_the_keyboard_is_enough(open_console: Any, api: Api, owner_conn: Any) -> None:
    admin_user = api.staff(owner_conn, "admin")
    target = api.signup()
    for n in range(22):
        _credit(api, admin_user, target.id, 1_000 + n)
    admin = open_console("admin")
    page = admin.page
    # sign in with the keyboard alone
    admin.open()
    page.get_by_label("Email", exact=True).focus()
    page.keyboard.type(admin_user.email)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Tab")
    page.keyboard.type(admin_user.mfa_code())
    page.keyboard.press("Enter")
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    # the ledger pages: 20 entries, then the rest
    admin.go(f"#/users/{target.id}")
    ledger = page.get_by_role("table", name=re.compile("Ledger entries"))
    expect(ledger.locator("tbody tr")).to_have_count(20)
    pager = page.get_by_role("navigation", name="Ledger pages")
    pager.get_by_role("button", name="Next page").focus()
    page.keyboard.press("Enter")
    expect(pager).to_contain_text("Page 2")
    expect(ledger.locator("tbody tr")).to_have_count(2)
    # the catalogue: create, edit, deactivate
    admin.go("#/videos")
    title = f"Console video {uuid.uuid4().hex[:6]}"
    page.get_by_label("Title", exact=True).first.fill(title)
    page.get_by_label("Duration (seconds)", exact=True).fill("45")
    page.get_by_label("Reward (dollars)", exact=True).first.fill("0.002")
    page.get_by_role("button", name="Create video").click()
    expect(page.get_by_role("status").filter(has_text="Created")).to_contain_text(f"Created “{title}” ($0.002")
    row = page.get_by_role("row").filter(has_text=title)
    row.get_by_role("button", name=f"Edit {title}").click()
    edit = page.get_by_role("form", name=f"Edit {title}")
    edit.get_by_label("Title", exact=True).fill(title + " (edited)")
    edit.get_by_role("button", name="Save").click()
    expect(edit.get_by_role("status")).to_contain_text("Saved")
    row = page.get_by_role("row").filter(has_text=title + " (edited)")
    row.get_by_role("button", name=re.compile("^Deactivate")).click()
    expect(page.get_by_role("row").filter(has_text=title + " (edited)")).to_contain_text("inactive")
    actions = [a["action"] for a in owner_conn.all(AUDIT_BY_ACTOR, a=admin_user.id)]
    assert {"video.create", "video.update", "video.deactivate"} <= set(actions)
    # a feature flag
    admin.go("#/flags")
    key = f"console_{uuid.uuid4().hex[:6]}"
    new = page.get_by_role("form", name="New flag")
    new.get_by_label("Key", exact=True).fill(key)
    new.get_by_label("Enabled", exact=True).check()
    new.get_by_label("Rollout %", exact=True).fill("25")
    new.get_by_role("button", name="Save").click()
    expect(new.get_by_role("status")).to_contain_text(f"{key}: on for 25%")
    assert "flag.set" in [a["action"] for a in owner_conn.all(AUDIT_BY_ACTOR, a=admin_user.id)]
    assert admin.errors == []
