"""Email templates: a subject, a plain-text body and an HTML body per notification kind.

Every link is built from the one ``PUBLIC_BASE_URL`` setting (``link``); every value put into the
HTML is escaped. ``TOKEN_PURPOSE`` names the kinds whose email carries a single-use token link.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

# kind => the account token its email carries (issued when the email is rendered)
TOKEN_PURPOSE = {"verify_email": "verify_email", "change_email": "change_email", "reset_password": "reset_password"}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def link(base_url: str, path: str, **query: str) -> str:
    """An absolute link into the app: ``PUBLIC_BASE_URL`` + ``path`` (+ query)."""
    url = base_url.rstrip("/") + "/" + path.lstrip("/")
    return url + ("?" + urlencode(query) if query else "")


@dataclass(frozen=True)
class _Template:
    subject: str
    lines: Callable[[dict[str, Any]], list[str]]
    action: Callable[[dict[str, Any]], tuple[str, str, dict[str, str]] | None]  # (label, path, query)


REVIEW_MESSAGES = {
    "ok": "Our review of your account is finished: cashouts work again as before.",
    "review": "Our team is reviewing your account. Cashouts are paused meanwhile; you can keep watching and earning.",
    "suspended": "Your account is suspended while we look into unusual activity: earning and cashouts are paused.",
    "banned": "Your account was closed for breaking our terms. Contact support if you think this is a mistake.",
}


def _amount(d: dict[str, Any]) -> str:
    amount = d.get("amount")
    return str(amount.get("formatted")) if isinstance(amount, dict) else str(amount or "")


TEMPLATES: dict[str, _Template] = {
    "verify_email": _Template(
        "Confirm your email address",
        lambda d: [
            "Welcome to EarnPay. Confirm that this address is yours to be able to request payouts.",
            "The link works once and expires.",
        ],
        lambda d: ("Confirm my email", "app/verify-email", {"token": d["token"]}),
    ),
    "signup_attempt": _Template(
        "Someone tried to sign up with your address",
        lambda d: [
            "Someone tried to create an EarnPay account with this email address, which already has an account.",
            "If it was you, sign in, or reset your password if you forgot it. Otherwise you can ignore this message.",
        ],
        lambda d: ("Sign in", "app/login", {}),
    ),
    "reset_password": _Template(
        "Reset your password",
        lambda d: ["Someone (hopefully you) asked to reset your EarnPay password.", "The link works once and expires in 30 minutes."],
        lambda d: ("Choose a new password", "app/reset-password", {"token": d["token"]}),
    ),
    "change_email": _Template(
        "Confirm your new email address",
        lambda d: ["Confirm that this address is yours: your EarnPay account will then use it.", "The link works once and expires."],
        lambda d: ("Confirm my new email", "app/verify-email", {"token": d["token"]}),
    ),
    "email_changed": _Template(
        "Your email address was changed",
        lambda d: [
            f"The email address of your EarnPay account was changed to {d.get('new_email', '')}.",
            "If you did not do this, reset your password and contact support at once.",
        ],
        lambda d: ("Open EarnPay", "app/account", {}),
    ),
    "password_changed": _Template(
        "Your password was changed",
        lambda d: [
            "The password of your EarnPay account was changed and every other session was signed out.",
            "If you did not do this, reset your password at once.",
        ],
        lambda d: ("Open EarnPay", "app/account", {}),
    ),
    "new_device": _Template(
        "New sign-in to your account",
        lambda d: [
            f"Your EarnPay account was signed in from a device we had not seen before (address {d.get('ip', '?')}, "
            f"{d.get('user_agent') or 'unknown browser'}).",
            "If this was not you, change your password.",
        ],
        lambda d: ("Review my account", "app/account", {}),
    ),
    "payout_paid": _Template(
        "Your payout was paid",
        lambda d: [f"Your payout of {_amount(d)} was sent."],
        lambda d: ("See the payout", f"app/payouts/{d.get('payout_id', '')}", {}),
    ),
    "payout_failed": _Template(
        "Your payout failed",
        lambda d: [f"Your payout of {_amount(d)} could not be paid and the money is back in your balance.", str(d.get("reason") or "")],
        lambda d: ("See the payout", f"app/payouts/{d.get('payout_id', '')}", {}),
    ),
    "kyc_decided": _Template(
        "Your identity check was decided",
        lambda d: [
            "Your identity was verified: you can now request payouts."
            if d.get("decision") == "verified"
            else "We could not verify your identity. " + str(d.get("reason") or "")
        ],
        lambda d: ("Open EarnPay", "app/kyc", {}),
    ),
    "mfa_reset": _Template(
        "Your two-factor authentication was reset",
        lambda d: ["An administrator reset the two-factor authentication of your staff account.", "Enrol again at your next sign-in."],
        lambda d: ("Sign in", "app/login", {}),
    ),
    # Trust and safety (functions/risk/service.transition): the state as the user sees it.
    "account_review": _Template(
        "Your account's review status changed",
        lambda d: [REVIEW_MESSAGES.get(str(d.get("state")), "The review status of your account changed.")],
        lambda d: ("Open EarnPay", "app/account", {}),
    ),
}

KINDS = frozenset(TEMPLATES)


def render(kind: str, data: dict[str, Any], *, base_url: str, display_name: str) -> Rendered:
    """The email for one notification (``data`` includes ``token`` for the kinds in TOKEN_PURPOSE)."""
    t = TEMPLATES[kind]
    lines = [line for line in t.lines(data) if line]
    action = t.action(data)
    url = link(base_url, action[1], **action[2]) if action else None
    text = "\n\n".join([f"Hello {display_name},", *lines, *([f"{action[0]}: {url}"] if action and url else []), "-- EarnPay"]) + "\n"
    esc = html.escape
    body = "".join(f"<p>{esc(line)}</p>" for line in lines)
    button = f'<p><a href="{esc(url or "", quote=True)}">{esc(action[0])}</a></p>' if action and url else ""
    html_body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{esc(t.subject)}</title></head>'
        f"<body><p>Hello {esc(display_name)},</p>{body}{button}<p>&mdash; EarnPay</p></body></html>"
    )
    return Rendered(t.subject, text, html_body)
