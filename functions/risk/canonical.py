"""Canonical email: one form per mailbox (docs/fraud.md). The database computes the same by trigger
(``ep_canonical_email`` in migration 0100); tests/risk/test_signals.py holds the two together."""

from __future__ import annotations

# Providers that deliver ``name+tag@`` to ``name@``; Gmail also ignores dots in the local part.
PLUS_TAG_DOMAINS = frozenset(
    {"gmail.com", "outlook.com", "hotmail.com", "live.com", "icloud.com", "me.com", "protonmail.com", "proton.me", "fastmail.com"}
)
DOT_BLIND_DOMAINS = frozenset({"gmail.com"})


def canonical_email(email: str) -> str:
    local, _, domain = email.strip().lower().partition("@")
    if domain == "googlemail.com":
        domain = "gmail.com"
    if domain in PLUS_TAG_DOMAINS:
        local = local.split("+", 1)[0]
    if domain in DOT_BLIND_DOMAINS:
        local = local.replace(".", "")
    return f"{local}@{domain}"
