"""Sending email: one provider adapter (SMTP), and the local SMTP server that ``serve`` and the tests start.

``SmtpSender`` speaks SMTP to the configured server: implicit TLS (``SMTP_TLS=tls``, port 465) or
STARTTLS (``starttls``, port 587) with the login from Secret Manager (``SMTP_PASSWORD``) in
production; plain SMTP (``none``) only to the local server, and never when deployed.

``LocalMailServer`` is a real SMTP server (aiosmtpd) for local runs and tests: every message it
receives is written to a directory (``.data/mail/`` under ``serve``) as ``<time>-<n>.eml`` (with its
plain-text part decoded beside it, ``<time>-<n>.txt``) and kept in memory, so a developer can open
the mail and the tests read it. It runs on its own thread in the
process that starts it (``serve``'s parent or the test run), never inside a function.
"""

from __future__ import annotations

import email
import email.policy
import logging
import smtplib
import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from shared.config import Settings


class MailConfigError(RuntimeError):
    """The mail settings cannot work (plain SMTP when deployed, a login without a password)."""


@dataclass(frozen=True)
class Mail:
    to: str
    subject: str
    text: str
    html: str
    message_id: str  # the RFC 5322 Message-ID, stable per notification (receivers can deduplicate too)


def build(mail: Mail, sender: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = mail.to
    msg["Subject"] = mail.subject
    msg["Message-ID"] = mail.message_id
    msg.set_content(mail.text)
    msg.add_alternative(mail.html, subtype="html")
    return msg


class SmtpSender:
    """The SMTP provider adapter."""

    def __init__(self, settings: Settings) -> None:
        if settings.smtp_tls == "none" and settings.is_production:
            raise MailConfigError("SMTP_TLS=none is for the local server only: set starttls or tls when deployed")
        if settings.smtp_username and settings.smtp_password is None:
            raise MailConfigError("SMTP_USERNAME is set but SMTP_PASSWORD is not")
        self.settings = settings

    def send(self, mail: Mail) -> None:
        """Sends one message; raises on any failure (the caller lets Pub/Sub redeliver)."""
        s = self.settings
        msg = build(mail, s.mail_from)
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_tls == "tls":
            smtp = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
        with smtp:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=context)
            if s.smtp_username and s.smtp_password is not None:
                smtp.login(s.smtp_username, s.smtp_password.get_secret_value())
            smtp.send_message(msg)


# --- the local SMTP server -------------------------------------------------------------------------
class LocalMailServer:
    """aiosmtpd on 127.0.0.1:``port`` (0: a free one); messages saved under ``directory``."""

    def __init__(self, directory: Path, port: int = 0, host: str = "127.0.0.1") -> None:
        self.directory = Path(directory)
        self.host = host
        self.requested_port = port
        self.port = port
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    def start(self) -> LocalMailServer:
        from aiosmtpd.controller import Controller

        from shared.ports import free_port

        logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every connection at INFO
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = self.requested_port or free_port(self.host)
        self._controller = Controller(_Handler(self), hostname=self.host, port=self.port, ready_timeout=10)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self, raw: bytes) -> None:
        msg = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self._lock:
            self.messages.append(msg)
            n = len(self.messages)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        (self.directory / f"{stamp}-{n:04d}.eml").write_bytes(raw)
        # ... and the plain-text part, decoded, beside it: what a developer reads (links included)
        head = "".join(f"{h}: {msg[h]}\n" for h in ("From", "To", "Subject", "Date") if msg[h])
        (self.directory / f"{stamp}-{n:04d}.txt").write_text(head + "\n" + text_part(msg), encoding="utf-8")

    def to(self, address: str) -> list[EmailMessage]:
        """The messages received for ``address`` so far, oldest first."""
        with self._lock:
            return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def wait_for(self, address: str, *, count: int = 1, timeout: float = 20.0, subject: str | None = None) -> list[EmailMessage]:
        """Waits until ``count`` messages (with ``subject`` in the subject, if given) arrived for ``address``."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.to(address) if subject is None or subject in str(m["Subject"])]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            time.sleep(0.05)


class _Handler:
    def __init__(self, server: LocalMailServer) -> None:
        self.server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.server.received(bytes(envelope.original_content or envelope.content))
        return "250 Message accepted for delivery"


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain",))
    return "" if part is None else str(part.get_content())


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("html",))
    return "" if part is None else str(part.get_content())
