"""The local platform behind ``python main.py serve``: production's moving parts, on one machine.

``Platform`` starts, in this order, and stops, in reverse, everything a local run needs:

* a real SMTP server (aiosmtpd, in this process, ``shared.mail.LocalMailServer``) that every email is sent
  to, each message saved under ``.data/mail/`` so a developer can read it (verification and reset links);
* the Cloud Storage emulator (gcp-storage-emulator, in this process), its objects on disk under
  ``LOCAL_STORAGE_DIR`` so documents and exports survive a restart;
* the real Pub/Sub emulator (``gcloud beta emulators pubsub start``, its own process group) with every
  topic, dead-letter topic, push subscription and hold subscription of infra/topology.yaml, the push
  endpoints pointing at the local functions (with this run's event token), the same retry and
  dead-letter policies as production. Where the Cloud CLI, its emulator component or java is missing
  it says why and goes on without Pub/Sub;
* the HTTP server (``python -m shared.localserver``: gunicorn in a child process, never forked from
  this one, which holds threads and emulator clients);
* background stand-ins given by the caller (the Eventarc stand-in for KYC uploads) and the scheduler
  stand-in, which publishes each job of infra/topology.yaml on its cron schedule (UTC).

It talks to the Pub/Sub emulator over its REST API (no gRPC client in this process). SIGINT and
SIGTERM stop everything (the embedded PostgreSQL is stopped by the caller when it started it).
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.config import ROOT
from shared.logs import get_logger
from shared.ports import free_port as free_port  # re-exported: callers take it from here
from shared.topology import Job, Topology

log = get_logger("serve")

EMULATOR_START_TIMEOUT_S = 60.0
HTTP_START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 6.0


class PlatformError(RuntimeError):
    """A local platform problem worth one line to the operator (busy port, a part that did not start)."""


class Shutdown(BaseException):  # like KeyboardInterrupt: not an error, a request to stop
    """Raised in the main thread by SIGINT or SIGTERM: stop everything and exit 0."""


# --- ports ----------------------------------------------------------------------------------------
def check_port_free(host: str, port: int) -> None:
    """Raises PlatformError when ``host:port`` cannot be bound (in use, or not ours to bind)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            s.bind((host, port))
        except OSError as exc:
            reason = "is already in use" if exc.errno == 98 else f"cannot be bound ({exc.strerror})"
            raise PlatformError(f"port {port} on {host} {reason}: stop the other server or choose another with --port") from exc


# --- the Pub/Sub emulator -------------------------------------------------------------------------
def pubsub_emulator_unavailable_reason() -> str | None:
    """Why the Pub/Sub emulator cannot run on this machine, or None when it can."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return "the Google Cloud CLI (gcloud) is not on PATH"
    roots = [Path(os.path.realpath(gcloud)).parent.parent]
    if os.environ.get("CLOUDSDK_ROOT_DIR"):
        roots.append(Path(os.environ["CLOUDSDK_ROOT_DIR"]))
    if not any((r / "platform" / "pubsub-emulator").is_dir() for r in roots):
        return "the gcloud component pubsub-emulator is not installed (gcloud components install pubsub-emulator)"
    if shutil.which("java") is None:
        return "java is not installed (the Pub/Sub emulator needs it)"
    return None


@dataclass
class PubSubEmulator:
    """The emulator process (its own process group: gcloud starts java as a child) and its REST API."""

    host: str
    project: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def call(self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 10.0) -> dict[str, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.host}/v1/{path}", data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310  # the local emulator
            raw = resp.read()
        return dict(json.loads(raw)) if raw else {}

    def answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://{self.host}/", timeout=0.5) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def wait_ready(self, timeout: float = EMULATOR_START_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                raise PlatformError(f"the Pub/Sub emulator did not start on {self.host} (exit {self.process.poll()}): {tail}")
            time.sleep(0.1)

    def put(self, kind: str, name: str, body: dict[str, Any] | None = None) -> None:
        """Creates ``projects/P/<kind>/<name>``; one that exists already is kept."""
        try:
            self.call("PUT", f"projects/{self.project}/{kind}/{name}", body or {})
        except urllib.error.HTTPError as exc:
            if exc.code != 409:  # ALREADY_EXISTS
                raise

    def publish(self, topic: str, data: bytes, attributes: dict[str, str] | None = None) -> str:
        message = {"data": base64.b64encode(data).decode(), "attributes": attributes or {}}
        answer = self.call("POST", f"projects/{self.project}/topics/{topic}:publish", {"messages": [message]})
        return str(answer["messageIds"][0])

    def stop(self) -> None:
        _stop_group(self.process)
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def start_pubsub_emulator(project: str) -> PubSubEmulator:
    """Starts the emulator on a free port (not waiting for it: ``wait_ready``)."""
    host = f"127.0.0.1:{free_port()}"
    fd, name = tempfile.mkstemp(prefix="earnpay-pubsub-emulator-", suffix=".log")
    with os.fdopen(fd, "wb") as out:
        process = subprocess.Popen(  # noqa: S603  # fixed arguments
            ["gcloud", "beta", "emulators", "pubsub", "start", f"--host-port={host}", f"--project={project}", "--quiet"],  # noqa: S607
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one; no terminal Ctrl-C reaches it
        )
    return PubSubEmulator(host=host, project=project, process=process, log_path=Path(name))


def _stop_group(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT_S) -> None:
    """SIGTERM to the process group, SIGKILL after ``timeout``."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):  # whatever is left of the group (java under gcloud)
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=2)


def create_topology(emulator: PubSubEmulator, topology: Topology, endpoint: Callable[[str], str]) -> int:
    """Every topic of the topology; for each consumed topic its dead-letter topic, push subscription
    (to ``endpoint(consumer)``, production's ack deadline, retry and dead-letter policies) and hold
    subscription. Returns the number of push subscriptions."""
    pushed = 0
    for topic in topology.topics:
        emulator.put("topics", topic.name)
        if topic.consumer is None:
            continue
        emulator.put("topics", topic.dead_letter_topic)
        emulator.put("subscriptions", topic.dead_letter_hold, {"topic": f"projects/{emulator.project}/topics/{topic.dead_letter_topic}"})
        subscription = {
            "topic": f"projects/{emulator.project}/topics/{topic.name}",
            "ackDeadlineSeconds": topic.ack_deadline,
            "pushConfig": {"pushEndpoint": endpoint(topic.consumer)},
            "retryPolicy": {"minimumBackoff": topology.minimum_backoff, "maximumBackoff": topology.maximum_backoff},
            "deadLetterPolicy": {
                "deadLetterTopic": f"projects/{emulator.project}/topics/{topic.dead_letter_topic}",
                "maxDeliveryAttempts": topic.max_delivery_attempts,
            },
        }
        with contextlib.suppress(urllib.error.HTTPError):  # left over from an earlier run on this emulator
            emulator.call("DELETE", f"projects/{emulator.project}/subscriptions/{topic.subscription}")
        emulator.put("subscriptions", topic.subscription, subscription)
        pushed += 1
    return pushed


# --- the scheduler stand-in -----------------------------------------------------------------------
def next_fire(schedule: str, after: dt.datetime) -> dt.datetime:
    """The first time strictly after ``after`` (UTC) that the unix-cron ``schedule`` fires."""
    from croniter import croniter

    return croniter(schedule, after.astimezone(dt.UTC)).get_next(dt.datetime).astimezone(dt.UTC)


def due_jobs(jobs: tuple[Job, ...] | list[Job], since: dt.datetime, until: dt.datetime) -> list[Job]:
    """The jobs whose schedule fires in ``(since, until]``."""
    return [j for j in jobs if next_fire(j.schedule, since) <= until]


class Scheduler(threading.Thread):
    """Publishes each job's message on its cron schedule (Cloud Scheduler's stand-in), until stopped."""

    def __init__(self, jobs: tuple[Job, ...], publish: Callable[[Job], str | None], stop: threading.Event) -> None:
        super().__init__(name="local-scheduler", daemon=True)
        self.jobs = jobs
        self.publish = publish
        self.stop_event = stop

    def fire(self, job: Job) -> None:
        try:
            message_id = self.publish(job)
            log.info("scheduler published %s to %s (message %s)", job.name, job.topic, message_id, extra={"event": "scheduler_fired"})
        except Exception as exc:  # a missed tick is harmless: the next one does the work (as Cloud Scheduler)
            log.warning("scheduler could not publish %s: %s", job.name, exc, extra={"event": "scheduler_failed"})

    def run(self) -> None:
        last = dt.datetime.now(dt.UTC)
        while not self.stop_event.is_set():
            upcoming = min(next_fire(j.schedule, last) for j in self.jobs)
            wait = (upcoming - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0 and self.stop_event.wait(min(wait, 30.0)):
                return
            now = dt.datetime.now(dt.UTC)
            if now < upcoming:
                continue
            for job in due_jobs(self.jobs, last, now):
                self.fire(job)
            last = now


# --- the platform ---------------------------------------------------------------------------------
@dataclass
class Platform:
    """Everything ``serve`` starts; ``stop()`` ends it all, in reverse order, within a few seconds."""

    host: str
    port: int
    project: str
    topology: Topology
    event_token: str
    storage_dir: Path | None
    mail_dir: Path | None = None  # where the local SMTP server saves what it receives (None: a temporary directory)
    pubsub: bool = True
    scheduler: bool = True
    run_jobs: list[str] = field(default_factory=list)
    workers: int = 1
    threads: int = 8
    env: dict[str, str] = field(default_factory=dict)
    say: Callable[[str], None] = print

    stop_event: threading.Event = field(default_factory=threading.Event, init=False)
    storage: Any = field(default=None, init=False)
    emulator: PubSubEmulator | None = field(default=None, init=False)
    http: subprocess.Popen[bytes] | None = field(default=None, init=False)
    mail: Any = field(default=None, init=False)
    threads_started: list[threading.Thread] = field(default_factory=list, init=False)

    @property
    def local_host(self) -> str:
        """The address the stand-ins use to reach the server (a wildcard bind is reached on loopback)."""
        return "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host  # noqa: S104  # a wildcard bind address is reached at loopback

    @property
    def base_url(self) -> str:
        return f"http://{self.local_host}:{self.port}"

    def endpoint(self, function: str) -> str:
        """The push endpoint of an event function: its local URL with this run's event token."""
        return f"{self.base_url}/{function}?event_token={self.event_token}"

    # --- parts -------------------------------------------------------------------------------
    def start_storage(self) -> str:
        from shared import storage

        if os.environ.get(storage.EMULATOR_ENV):
            storage.ensure_buckets()
            return f"the GCS emulator at {os.environ[storage.EMULATOR_ENV]} (STORAGE_EMULATOR_HOST)"
        self.storage = storage.start_emulator("127.0.0.1", 0, data_dir=self.storage_dir)
        os.environ[storage.EMULATOR_ENV] = self.storage.url
        storage.reset_client()
        storage.ensure_buckets()  # the KYC and exports buckets (kept on disk after the first run)
        where = f"objects kept in {short_path(self.storage_dir)}" if self.storage_dir else "in memory"
        return f"GCS emulator on {self.storage.url}, {where}"

    def start_pubsub(self) -> str | None:
        """Starts the emulator (readiness is awaited later); None when it cannot run here."""
        reason = pubsub_emulator_unavailable_reason()
        if reason:
            self.say(f"  pubsub      not started: {reason}; events run only by hand (process-payouts, maintenance, ...)")
            return None
        self.emulator = start_pubsub_emulator(self.project)
        return self.emulator.host

    def start_mail(self) -> str:
        """The local SMTP server (aiosmtpd) that the functions send email through; mail kept on disk."""
        from shared.mail import LocalMailServer

        directory = self.mail_dir or Path(tempfile.mkdtemp(prefix="earnpay-mail-"))
        self.mail = LocalMailServer(directory).start()
        self.env.setdefault("SMTP_HOST", self.mail.host)
        self.env.setdefault("SMTP_PORT", str(self.mail.port))
        self.env.setdefault("SMTP_TLS", "none")
        self.env.setdefault("EARNPAY_LOCAL_MAIL_DIR", str(directory))  # GET /_mail lists it
        self.env.setdefault("PUBLIC_BASE_URL", os.environ.get("PUBLIC_BASE_URL") or self.base_url)
        return (
            f"SMTP server on {self.mail.host}:{self.mail.port}: every email sent is saved in {short_path(directory)} "
            f"(.eml, and .txt to read) and listed at {self.base_url}/_mail"
        )

    def http_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env["EARNPAY_EVENT_TOKEN"] = self.event_token
        if self.emulator is not None:
            env.update({"PUBSUB_EMULATOR_HOST": self.emulator.host, "PUBSUB_ENABLED": "true", "GCP_PROJECT": self.project})
        return env

    def start_http(self) -> None:
        cmd = [sys.executable, "-m", "shared.localserver", "--host", self.host, "--port", str(self.port)]
        cmd += ["--workers", str(self.workers), "--threads", str(self.threads)]
        self.http = subprocess.Popen(cmd, cwd=ROOT, env=self.http_env(), stdin=subprocess.DEVNULL)  # noqa: S603  # our own module

    def wait_http(self) -> None:
        assert self.http is not None
        deadline = time.monotonic() + HTTP_START_TIMEOUT_S
        while True:
            if self.http.poll() is not None:
                raise PlatformError(f"the HTTP server exited during start-up (status {self.http.returncode})")
            try:
                with urllib.request.urlopen(f"{self.base_url}/health/", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise PlatformError(f"the HTTP server did not answer on {self.base_url} within {HTTP_START_TIMEOUT_S:.0f} s")
            time.sleep(0.1)

    def publish_job(self, job: Job) -> str | None:
        """Publishes a job's message to its topic, or, without Pub/Sub, delivers it to the topic's
        consumer as a push would (so the schedule still runs where the Cloud CLI is missing)."""
        if self.emulator is not None:
            return self.emulator.publish(job.topic, job.data, job.attributes)
        consumer = self.topology.topic(job.topic).consumer
        if consumer is None:
            return None
        message_id = f"local-{job.name}-{int(time.time())}"
        message = {"data": base64.b64encode(job.data).decode(), "messageId": message_id, "attributes": job.attributes}
        body = {"message": message, "subscription": f"projects/{self.project}/subscriptions/{self.topology.topic(job.topic).subscription}"}
        req = urllib.request.Request(self.endpoint(consumer), data=json.dumps(body).encode(), method="POST")  # noqa: S310
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=600) as resp:  # noqa: S310  # the local server
            resp.read()
        return message_id

    def background(self, name: str, loop: Callable[[threading.Event], None]) -> None:
        thread = threading.Thread(target=loop, args=(self.stop_event,), name=name, daemon=True)
        thread.start()
        self.threads_started.append(thread)

    # --- the whole ---------------------------------------------------------------------------
    def begin(self) -> None:
        """The parts that need no database: storage, and the Pub/Sub emulator's slow boot (awaited in ``start``)."""
        self.say(f"  storage     {self.start_storage()}")
        self.say(f"  mail        {self.start_mail()}")
        if self.pubsub:
            self.start_pubsub()
        else:
            self.say("  pubsub      off (--no-pubsub); events run only by hand")

    def start(self, stand_ins: dict[str, Callable[[threading.Event], None]] | None = None) -> None:
        """The HTTP server, the topics and subscriptions, the stand-ins and the scheduler (after ``begin``)."""
        self.start_http()
        if self.emulator is not None:
            self.emulator.wait_ready()
        self.wait_http()
        if self.emulator is not None:
            pushed = create_topology(self.emulator, self.topology, self.endpoint)
            self.say(
                f"  pubsub      Pub/Sub emulator on {self.emulator.host} (project {self.project}): {len(self.topology.topics)} topics, "
                f"{pushed} push subscriptions to the local functions, retries and dead-letter topics as in production"
            )
        for name, loop in (stand_ins or {}).items():
            self.background(name, loop)
        if self.scheduler:
            sched = Scheduler(self.topology.jobs, self.publish_job, self.stop_event)
            sched.start()
            self.threads_started.append(sched)
            jobs = len(self.topology.jobs)
            self.say(f"  scheduler   {jobs} jobs of infra/topology.yaml on their cron schedules (UTC); --no-scheduler: off")
            for name in self.run_jobs:
                sched.fire(self.topology.job(name))
        else:
            self.say("  scheduler   off (--no-scheduler)")
            for name in self.run_jobs:
                Scheduler((), self.publish_job, self.stop_event).fire(self.topology.job(name))

    def wait(self) -> int:
        """Blocks until a stop signal (Shutdown) or the HTTP server's death; returns the exit status."""
        assert self.http is not None
        while True:
            status = self.http.poll()
            if status is not None:
                self.say(f"error: the HTTP server stopped unexpectedly (status {status}); stopping the local platform")
                return 1
            time.sleep(0.2)

    def stop(self) -> None:
        """Stops every part this platform started, all at once, within ``STOP_TIMEOUT_S`` (then SIGKILL);
        safe to call twice, or after a failed start."""
        deadline = time.monotonic() + STOP_TIMEOUT_S
        self.stop_event.set()  # the scheduler and the stand-ins
        http, emulator = self.http, self.emulator
        if http is not None and http.poll() is None:
            http.send_signal(signal.SIGTERM)  # gunicorn: graceful, in-flight requests up to 5 s
        if emulator is not None and emulator.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(emulator.process.pid, signal.SIGTERM)
        if http is not None:
            try:
                http.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                http.kill()
                http.wait(timeout=2)
        if emulator is not None:
            _stop_group(emulator.process, timeout=max(0.1, deadline - time.monotonic()))
            with contextlib.suppress(OSError):
                emulator.log_path.unlink()
            self.emulator = None
        for thread in self.threads_started:
            thread.join(timeout=max(0.1, deadline - time.monotonic()))
        if self.mail is not None:
            self.mail.stop()
            self.mail = None
        if self.storage is not None:
            from shared import storage

            self.storage.stop()
            self.storage = None
            os.environ.pop(storage.EMULATOR_ENV, None)
            storage.reset_client()


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """SIGINT and SIGTERM raise Shutdown in the main thread (during start-up too); restored afterwards."""

    def _raise(signum: int, _frame: Any) -> None:
        # further signals while stopping are ignored: the stop is already under way
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Shutdown(signal.Signals(signum).name)

    previous = {s: signal.signal(s, _raise) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def short_path(path: Path | None) -> str:
    if path is None:
        return ""
    with contextlib.suppress(ValueError):
        return str(Path(path).resolve().relative_to(ROOT))
    return str(path)
