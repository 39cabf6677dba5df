"""The staff console end to end in real Chromium: each role does its job in the browser, every step
leaves its audit entry, every page passes axe-core without serious or critical violations, and a
screenshot of each page is saved (tests/console/conftest.py says where)."""

from __future__ import annotations

import re
import struct
import zlib
from typing import Any

from playwright.sync_api import expect

from functions.auth.queries import SET_ROLE
from functions.payouts.batch import process_payouts
from shared.db import Query
from tests.helpers import PASSWORD, Api, User
from tests.kyc.support import upload_and_finalize

AUDIT_BY_ACTOR = Query(
    "t_console_audit_by_actor",
    "SELECT action, target_type, target_id, reason FROM audit_log WHERE actor_id = CAST(:a AS uuid) ORDER BY id",
    prepared=False,
)
PAYOUT_STATUS = Query("t_console_payout_status", "SELECT status FROM payout_requests WHERE id = CAST(:id AS uuid)", prepared=False)
ADJUSTMENTS_OF = Query(
    "t_console_adjustments",
    "SELECT amount FROM earnings WHERE user_id = CAST(:u AS uuid) AND type = 'adjustment' ORDER BY seq",
    prepared=False,
)
AGE_SESSIONS = Query(
    "t_console_age_sessions",
    "UPDATE sessions SET last_seen_at = now() - interval '31 minutes' WHERE user_id = CAST(:u AS uuid) AND revoked_at IS NULL",
    prepared=False,
)


def png(width: int = 120, height: int = 80, rgb: tuple[int, int, int] = (40, 90, 160)) -> bytes:
    """A real PNG (solid colour) that a browser decodes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def pdf() -> bytes:
    """A one-page PDF with a line of text."""
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 200] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        None,
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    text = b"BT /F1 18 Tf 40 100 Td (PASSPORT SCAN) Tj ET"
    objects[3] = b"<< /Length %d >>\nstream\n" % len(text) + text + b"\nendstream"
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def actions(owner_conn: Any, actor: User) -> list[str]:
    return [r["action"] for r in owner_conn.all(AUDIT_BY_ACTOR, a=actor.id)]


def accessible(console: Any, what: str) -> None:
    violations = console.axe()
    assert violations == [], f"{what}: serious or critical accessibility violations: {violations}"


def promote(admin: Any, colleague: User, role: str) -> None:
    page = admin.page
    admin.go("#/users")
    page.get_by_label("Search by", exact=True).select_option("email")
    page.get_by_label("Search for", exact=True).fill(colleague.email)
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=colleague.email).click()
    page.get_by_role("heading", level=1).filter(has_text=colleague.email).wait_for()
    page.get_by_label("Role", exact=True).select_option(role)
    page.get_by_role("button", name="Change role").click()
    expect(page.get_by_role("status").filter(has_text="Role changed")).to_contain_text(f"Role changed to {role}")


def test_each_role_does_its_job_in_the_browser_and_every_step_is_audited(open_console: Any, api: Api, client: Any, owner_conn: Any) -> None:
    # --- an admin enrols two-factor, signs in with a code, promotes a compliance and a finance colleague
    admin_user = api.signup(name="First Admin")
    owner_conn.execute(SET_ROLE, id=admin_user.id, role="admin")  # as create-admin would, before enrolling
    admin = open_console("admin")
    admin.sign_in(admin_user.email, PASSWORD, enrolled=False)
    authenticator = admin.enrol(shot="00-enrol")
    accessible(admin, "users (after enrolment)")
    admin.page.get_by_role("button", name="Sign out").click()
    admin.page.get_by_label("Two-factor code", exact=True).wait_for()
    admin.sign_in(admin_user.email, PASSWORD, authenticator.code())
    expect(admin.page.get_by_role("table")).to_be_visible()
    admin.shot("01-users")
    accessible(admin, "users")
    compliance_user = api.signup(name="Compliance Colleague")
    finance_user = api.signup(name="Finance Colleague")
    promote(admin, compliance_user, "compliance")
    admin.shot("02-user")
    accessible(admin, "user page")
    promote(admin, finance_user, "finance")
    assert actions(owner_conn, admin_user).count("user.role_change") == 2

    # --- compliance previews a customer's documents (an image and a PDF) and verifies them --------
    grace = api.signup(name="Grace Hopper")
    upload_and_finalize(api, client, grace, data=png(), content_type="image/png", kind="passport")
    upload_and_finalize(api, client, grace, data=pdf(), content_type="application/pdf", kind="proof_of_address")
    compliance = open_console("compliance")
    compliance.sign_in(compliance_user.email, PASSWORD, enrolled=False)  # promoted: must enrol first
    compliance.enrol()
    page = compliance.page
    page.get_by_role("link", name="KYC review").click()
    page.get_by_role("link", name=f"Review {grace.email}").click()
    image = page.get_by_role("img", name=re.compile("passport document"))
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth === 120", arg=image.element_handle())
    frame = page.locator("iframe.pdf")
    expect(frame).to_have_attribute("src", re.compile(r"^http://127\.0\.0\.1:\d+/.*X-Goog-Signature="))
    compliance.shot("03-kyc")
    accessible(compliance, "KYC review")
    page.get_by_label("Verified", exact=True).check()
    page.get_by_label("Reason", exact=True).fill("passport matches the account holder")
    page.get_by_role("button", name="Record decision").click()
    expect(page.get_by_role("status").filter(has_text="Decision recorded")).to_contain_text("verified")
    assert actions(owner_conn, compliance_user)[-2:] == ["kyc.documents_view", "kyc.decision"]
    assert compliance.csp_violations == [] and compliance.errors == []

    # --- the admin credits $25 through the adjustments form ---------------------------------------
    admin.go("#/adjustments")
    page = admin.page
    page.get_by_label("User id", exact=True).fill(grace.id)
    page.get_by_label("Amount in dollars (negative for a debit)", exact=True).fill("25")
    page.get_by_label("Reason", exact=True).fill("launch promotion")
    page.get_by_role("button", name="Post adjustment").click()
    expect(page.get_by_role("status").filter(has_text="Posted")).to_contain_text("Posted $25.00")
    admin.shot("04-adjustments")
    accessible(admin, "adjustments")
    assert actions(owner_conn, admin_user)[-1] == "ledger.adjustment"

    # --- the customer asks for $20; finance approves it and sees it paid after the batch ----------
    method = api.post("/payouts/methods", user=grace, json={"type": "paypal", "email": "grace.paypal@example.org", "password": PASSWORD})
    assert method.status_code == 201, method.get_data(as_text=True)
    payout = api.post("/payouts/", user=grace, json={"amount_cents": 2_000, "password": PASSWORD, "method_id": method.get_json()["id"]})
    assert payout.status_code == 201, payout.get_data(as_text=True)
    payout_id = payout.get_json()["id"]
    finance = open_console("finance")
    finance.sign_in(finance_user.email, PASSWORD, enrolled=False)
    finance.enrol()
    page = finance.page
    page.get_by_role("link", name="Payouts").click()
    approve = page.get_by_role("button", name=f"Approve payout of $20.00 to {grace.email}")
    expect(approve).to_be_visible()
    finance.shot("05-payouts")
    accessible(finance, "payouts")
    approve.click()
    expect(page.locator(".outcomes")).to_contain_text("$20.00 approved")
    assert actions(owner_conn, finance_user)[-1] == "payout.approve"
    process_payouts()
    assert owner_conn.one(PAYOUT_STATUS, id=payout_id)["status"] == "paid"
    page.get_by_label("Status", exact=True).select_option("paid")
    expect(page.get_by_role("row").filter(has_text=grace.email)).to_contain_text("paid")

    # --- support searches the customer and reads their ledger -------------------------------------
    support_user = api.staff(owner_conn, "support")
    support = open_console("support")
    support.sign_in(support_user.email, PASSWORD, support_user.mfa_code())
    page = support.page
    expect(page.get_by_role("link", name="Payouts")).to_have_count(0)  # not support's page
    page.get_by_label("Search by", exact=True).select_option("email_prefix")
    page.get_by_label("Search for", exact=True).fill(grace.email.split("@")[0])
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=grace.email).click()
    ledger = page.get_by_role("table", name=re.compile("Ledger entries"))
    expect(ledger).to_contain_text("payout_hold")
    expect(ledger).to_contain_text("-$20.00")
    expect(ledger).to_contain_text("$25.00")
    page.get_by_label("Entry type", exact=True).select_option("adjustment")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("table", name=re.compile(r"Ledger entries.*\(adjustment\)"))).not_to_contain_text("payout_hold")
    support.shot("06-user-ledger")
    accessible(support, "user page (support)")
    assert {"user.search", "user.view", "user.account_view", "user.ledger_view"} <= set(actions(owner_conn, support_user))

    # --- the admin reads it all back in the audit log, and the remaining pages pass axe ----------
    admin.go("#/audit")
    page = admin.page
    page.get_by_label("Action (e.g. payout.approve)", exact=True).fill("kyc.decision")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("table", name="Staff actions, newest first")).to_contain_text("passport matches the account holder")
    admin.shot("07-audit")
    accessible(admin, "audit log")
    for fragment, name in (("#/videos", "08-videos"), ("#/flags", "09-flags")):
        admin.go(fragment)
        page.get_by_role("heading", level=1).wait_for()
        page.wait_for_selector("text=Loading", state="detached")
        admin.shot(name)
        accessible(admin, fragment)
    for c in (admin, compliance, finance, support):
        assert c.dialogs == [] and c.errors == [] and c.csp_violations == [], (c.name, c.dialogs, c.errors, c.csp_violations)
