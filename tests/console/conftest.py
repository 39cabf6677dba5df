"""The staff console in a real browser: Debian's Chromium driven by Playwright for Python.

``make test`` (and CI) install Chromium and build the console first (Makefile: ``browser``,
``console``); a run without them fails here with what to do, it never skips. The console is served
by the same dispatcher ``make serve`` runs, on a free port of 127.0.0.1, in a thread of this process
(stopped at the end of the module). Screenshots go to ``tmp/artifacts/console/`` (or
``$EARNPAY_ARTIFACTS_DIR/console``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("EARNPAY_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",  # the machines run as root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
AXE = ROOT / "console" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(os.environ.get("EARNPAY_ARTIFACTS_DIR") or ROOT / "tmp" / "artifacts") / "console"


@pytest.fixture(scope="session")
def console_build() -> Path:
    """The built console (``make console`` rebuilds it when a source is newer than the build)."""
    done = subprocess.run(["make", "-s", "console"], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        hint = "" if shutil.which("npm") else " (npm is missing: the console needs Node.js 20+ to build)"
        pytest.fail(f"`make console` failed{hint}:\n{done.stdout}\n{done.stderr}")
    index = ROOT / "console" / "dist" / "index.html"
    assert index.is_file()
    return index.parent


@dataclass
class ConsoleServer:
    url: str  # http://127.0.0.1:PORT


@pytest.fixture(scope="module")
def console_server(apps: Any, gcs: Any, console_build: Path) -> Iterator[ConsoleServer]:
    """The local dispatcher (functions + /console/) over real HTTP on a free port."""
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:  # the access log would drown the test output
            pass

    server = make_server("127.0.0.1", 0, apps, threaded=True, request_handler=QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="console-http", daemon=True)
    thread.start()
    try:
        yield ConsoleServer(url=f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make browser` (or `make test`) installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class Totp:
    """An authenticator app: each code it gives is for a time step not used before (the server
    accepts a code once, and one step ahead for clock drift)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.step = 0

    def code(self) -> str:
        import pyotp

        step = max(int(time.time() // 30), self.step + 1)
        while step > int(time.time() // 30) + 1:
            time.sleep(0.5)
        self.step = step
        return str(pyotp.TOTP(self.secret).generate_otp(step))


class Console:
    """One staff member's browser tab on the console, with what the page did (dialogs, errors)."""

    def __init__(self, browser: Any, server: ConsoleServer, name: str) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(10_000)
        self.server = server
        self.name = name
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.csp_violations: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.csp_violations.append(m.text) if "Content Security Policy" in m.text else None)

    def open(self, fragment: str = "") -> None:
        self.page.goto(f"{self.server.url}/console/{fragment}")

    def go(self, fragment: str) -> None:
        self.page.evaluate("f => { window.location.hash = f }", fragment)

    def sign_in(self, email: str, password: str, code: str | None = None, *, enrolled: bool = True) -> None:
        """Signs in through the form (with the two-factor code when given); ``enrolled=False``: a staff
        member without two-factor yet, who lands on the enrolment page."""
        self.open()
        page = self.page
        page.get_by_label("Email", exact=True).fill(email)
        page.get_by_label("Password", exact=True).fill(password)
        if code is not None:
            page.get_by_label("Two-factor code", exact=True).fill(code)
        page.get_by_role("button", name="Sign in").click()
        if enrolled:
            page.get_by_role("button", name="Sign out").wait_for()
        else:
            page.get_by_role("heading", name="Set up two-factor authentication").wait_for()

    def enrol(self, shot: str | None = None) -> Totp:
        """Enrols two-factor on the enrolment page: reads the secret shown, confirms with its code,
        checks the 10 recovery codes, continues into the console. Returns the authenticator."""
        page = self.page
        totp = Totp(page.get_by_test_id("mfa-secret").inner_text().strip())
        expect(page.get_by_role("img", name="QR code of the two-factor secret")).to_be_visible()
        page.get_by_label("Code from the app", exact=True).fill(totp.code())
        if shot:
            self.shot(shot)
        page.get_by_role("button", name="Turn on two-factor").click()
        expect(page.get_by_role("list", name="Recovery codes").get_by_role("listitem")).to_have_count(10)
        page.get_by_role("button", name="I saved them: continue").click()
        page.get_by_role("button", name="Sign out").wait_for()
        return totp

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def axe(self) -> list[dict[str, Any]]:
        """Serious and critical accessibility violations of the page as it is (axe-core from npm)."""
        assert AXE.is_file(), f"{AXE} is missing: `make console` installs the console's npm packages"
        # evaluated through the DevTools protocol, which the page's CSP does not govern (an injected
        # <script> would be refused, as it should be)
        self.page.evaluate(AXE.read_text(encoding="utf-8"))
        result = self.page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        return [
            {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:3]}
            for v in result["violations"]
            if v["impact"] in ("serious", "critical")
        ]

    def close(self) -> None:
        self.context.close()


@pytest.fixture()
def open_console(browser: Any, console_server: ConsoleServer) -> Iterator[Any]:
    opened: list[Console] = []

    def make(name: str) -> Console:
        c = Console(browser, console_server, name)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()
