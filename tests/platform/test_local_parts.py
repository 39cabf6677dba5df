"""The local platform's parts in-process: the event token at the dispatcher, ``GET /``, the scheduler
stand-in's cron arithmetic, and command-line mistakes as one line on stderr."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path
from typing import Any

import pytest
from werkzeug.test import Client

from shared import topology
from shared.config import get_settings
from shared.localplatform import Scheduler, due_jobs, next_fire

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.UTC


def _envelope() -> dict[str, Any]:
    data = json.dumps({"not": "a credit request"}).encode()
    message = {"data": base64.b64encode(data).decode(), "messageId": uuid.uuid4().hex[:12]}
    return {"message": message, "subscription": "projects/earnpay-test/subscriptions/credit-earnings-push"}


def test_event_functions_refuse_deliveries_without_the_run_token(apps: Any) -> None:
    bare = Client(apps.dispatcher)  # a caller who is not the local Pub/Sub or Eventarc stand-in
    token = apps.dispatcher.event_token
    for name in (
        "credit_earnings",
        "process_payouts",
        "run_maintenance",
        "kyc_document_uploaded",
        "export_user_data",
        "send_notifications",
    ):
        refused = bare.post(f"/{name}", json=_envelope())
        assert refused.status_code == 403 and refused.get_json()["error"]["code"] == "event_source_refused", name
    assert bare.post("/credit_earnings?event_token=wrong", json=_envelope()).status_code == 403
    assert bare.post("/credit_earnings", json=_envelope(), headers={"X-EarnPay-Event-Token": token + "x"}).status_code == 403
    # the stand-ins' deliveries get through (this one is not a credit request: dead-lettered and acknowledged)
    assert bare.post(f"/credit_earnings?event_token={token}", json=_envelope()).status_code == 200
    assert bare.post("/credit_earnings", json=_envelope(), headers={"X-EarnPay-Event-Token": token}).status_code == 200
    # HTTP functions need no token
    assert bare.get("/health/").status_code == 200


def test_the_index_names_the_functions_the_docs_and_an_example(apps: Any) -> None:
    answer = Client(apps.dispatcher).get("/")
    assert answer.status_code == 200
    body = answer.get_json()
    assert set(body["functions"]["http"]) >= {"auth", "videos", "earnings", "payouts", "health"}
    events = {"credit_earnings", "process_payouts", "run_maintenance", "kyc_document_uploaded", "export_user_data", "send_notifications"}
    assert set(body["functions"]["events"]) == events
    assert body["example"]["route"].endswith("/health/")
    openapi = Client(apps.dispatcher).get("/openapi.json")
    assert openapi.status_code == 200 and openapi.get_json()["openapi"].startswith("3.")
    assert Client(apps.dispatcher).get("/nope/").status_code == 404


def test_the_scheduler_fires_each_job_on_its_cron_schedule() -> None:
    jobs = topology.load().jobs
    by_name = {j.name: j for j in jobs}
    t0 = dt.datetime(2026, 3, 15, 4, 59, 30, tzinfo=UTC)  # the 15th: the restore drill's day
    assert next_fire(by_name["payout-batches"].schedule, t0) == dt.datetime(2026, 3, 15, 5, 0, tzinfo=UTC)
    assert next_fire(by_name["maintenance-reconcile"].schedule, t0) == dt.datetime(2026, 3, 16, 1, 30, tzinfo=UTC)
    fired = {j.name for j in due_jobs(jobs, t0, t0 + dt.timedelta(seconds=40))}
    assert fired == {
        "payout-batches",
        "maintenance-outbox-sweep",
        "maintenance-restore-drill",
        "maintenance-clearing",
        "maintenance-risk-scan",
    }
    later = dt.datetime(2026, 3, 15, 5, 1, 30, tzinfo=UTC)
    assert {j.name for j in due_jobs(jobs, later, later + dt.timedelta(seconds=30))} == {
        "maintenance-outbox-sweep",
        "maintenance-risk-scan",
    }
    # the message is the job's body as Terraform's jsonencode writes it, with Cloud Scheduler's attributes
    assert json.loads(by_name["payout-batches"].data) == {"batch_size": 1000}
    assert by_name["payout-batches"].attributes == {"source": "cloud-scheduler", "job": "payout-batches"}


def test_the_scheduler_thread_publishes_what_is_due_and_stops_at_once() -> None:
    every_minute = topology.Job("tick", "", "* * * * *", "maintenance-tasks", {"task": "outbox_sweep"})
    published: list[str] = []
    stop = threading.Event()
    sched = Scheduler((every_minute,), lambda job: published.append(job.name) or "1", stop)
    sched.fire(every_minute)  # what --run-job does
    sched.start()
    stop.set()
    sched.join(timeout=2)
    assert not sched.is_alive() and published == ["tick"]


def _cli(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if password is not None:
        env["EARNPAY_ADMIN_PASSWORD"] = password
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("verify-ledger", "--user", "nope"), "not a user id"),
        (("no-such-command",), "invalid choice"),
        (("serve", "--port", "not-a-port"), "invalid int value"),
        (("maintenance", "vacuum-everything"), "invalid choice"),
        (("serve", "--run-job", "no-such-job", "--port", "1"), "no scheduler job named"),
    ],
)
def test_command_line_mistakes_are_one_line(args: tuple[str, ...], says: str) -> None:
    result = _cli(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


def test_create_admin_for_an_existing_email_is_one_line() -> None:
    email = f"admin-{uuid.uuid4().hex[:8]}@example.com"
    first = _cli("create-admin", "--email", email, password="a long admin password")
    assert first.returncode == 0, first.stderr
    again = _cli("create-admin", "--email", email, password="a long admin password")
    assert again.returncode == 1
    assert again.stderr.strip() == "error: an account with this email already exists"
    assert "Traceback" not in again.stdout + again.stderr and "stack_trace" not in again.stdout


def test_make_reset_drops_local_data_and_keeps_the_virtualenv(tmp_path: Path) -> None:
    import shutil

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    for d in (".venv/bin", ".data/pg", ".data/storage/.cloudstorage", ".data/bench-pg"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / ".data" / "local-kek").write_bytes(b"k")
    result = subprocess.run(["make", "reset"], cwd=tmp_path, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / ".venv" / "bin").is_dir(), "make reset must keep .venv"
    assert sorted(p.name for p in (tmp_path / ".data").iterdir()) == ["bench-pg"]


def test_the_local_mailbox_lists_what_the_smtp_server_received(tmp_path: Any) -> None:
    """GET /_mail shows a developer the emails of the local SMTP server (the verification links)."""
    from shared.localserver import Dispatcher
    from shared.mail import LocalMailServer, Mail, SmtpSender

    server = LocalMailServer(tmp_path).start()
    try:
        settings = get_settings().model_copy(update={"smtp_host": server.host, "smtp_port": server.port, "smtp_tls": "none"})
        link = "http://127.0.0.1:8080/app/verify-email?token=abc_DEF-123"
        SmtpSender(settings).send(Mail("ada@example.com", "Confirm your email address", f"Confirm: {link}\n", "<p>x</p>", "<m-1@x>"))
        SmtpSender(settings).send(Mail("bob@example.com", "Something else", "Hello Bob\n", "<p>y</p>", "<m-2@x>"))
        assert server.wait_for("bob@example.com")
    finally:
        server.stop()
    client = Client(Dispatcher({}, {}, None, mail_dir=tmp_path))
    listed = client.get("/_mail").get_json()["items"]
    assert [m["to"] for m in listed] == ["bob@example.com", "ada@example.com"]
    (ada,) = client.get("/_mail?to=ADA@example.com").get_json()["items"]
    assert ada["subject"] == "Confirm your email address" and link in ada["text"]
    assert len(list(tmp_path.glob("*.eml"))) == 2
    assert Client(Dispatcher({}, {}, None)).get("/_mail").get_json() == {"directory": None, "items": []}
