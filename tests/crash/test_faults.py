"""Fault tests (issue 16): kill the server, kill only its workers, crash PostgreSQL, in the middle of
concurrent payout requests, admin adjustments and video completions; then every Idempotency-Key
answers definitively within the lease plus one retry, the ledger verifies, no hold lacks its payout or
payout its hold, no answer was a 500, and no effect happened twice.

Deterministic by fault points, not timing luck: the server runs with ``EARNPAY_FAULT_PAUSE``, so a
request whose key starts with ``pause-before_call-`` stands still after claiming its key and before
the business transaction, and one with ``pause-after_call-`` after committing its effect and before
its answer is stored (the two windows a crash can hit). The test waits until the database shows every
such request standing there, and only then kills.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pyotp
import pytest

from functions.payouts.service import payout_id_for
from shared.config import ROOT, get_settings
from shared.db import APP_ROLE, Conn, Query
from shared.dbsetup import create_database_if_missing
from shared.migrate import migrate
from tests.crash.support import DB_NAME, Answer, Postgres, Server

LEASE_S = 2.0
PASSWORD = "correct horse battery staple"
PAYOUT_CENTS = 1_000
ADJUST_MICROS = 1_500_000

SET_KYC = Query("t_crash_kyc", "UPDATE users SET kyc_status = 'verified' WHERE id = CAST(:id AS uuid)", prepared=False)
SET_ROLE = Query("t_crash_role", "UPDATE users SET role = 'admin' WHERE id = CAST(:id AS uuid)", prepared=False)
USER_ID = Query("t_crash_user_id", "SELECT id::text FROM users WHERE email = :email", prepared=False)
AGE = Query(
    "t_crash_age",
    """UPDATE video_progress SET last_heartbeat_at = last_heartbeat_at - interval '15 seconds',
                                 stream_started_at = stream_started_at - interval '15 seconds'
        WHERE user_id = CAST(:user_id AS uuid) AND video_id = CAST(:video_id AS uuid)""",
    prepared=False,
)
PAYOUTS_WITH_IDS = Query("t_crash_payouts", "SELECT count(*) FROM payout_requests WHERE id::text = ANY (:ids)", prepared=False)
HOLDS_OF = Query(
    "t_crash_holds_of",
    "SELECT reference, count(*) AS n FROM earnings WHERE type = 'payout_hold' AND reference = ANY (:ids) GROUP BY reference",
    prepared=False,
)
ADJUSTMENTS_WITH_KEYS = Query(
    "t_crash_adjustments",
    "SELECT idempotency_key, count(*) AS n FROM earnings WHERE type = 'adjustment' AND idempotency_key = ANY (:keys) GROUP BY 1",
    prepared=False,
)
OPEN_CLAIMS = Query(
    "t_crash_open_claims", "SELECT count(*) FROM idempotency_keys WHERE key = ANY (:keys) AND status IS NULL", prepared=False
)
UNANSWERED = Query("t_crash_unanswered", "SELECT key FROM idempotency_keys WHERE key = ANY (:keys) AND status IS NULL", prepared=False)
ORPHAN_HOLDS = Query(
    "t_crash_orphan_holds",
    """SELECT count(*) FROM earnings e WHERE e.type = 'payout_hold'
        AND NOT EXISTS (SELECT 1 FROM payout_requests p WHERE p.id::text = e.reference)""",
    prepared=False,
)
ORPHAN_PAYOUTS = Query(
    "t_crash_orphan_payouts",
    """SELECT count(*) FROM payout_requests p
        WHERE NOT EXISTS (SELECT 1 FROM earnings e WHERE e.user_id = p.user_id AND e.idempotency_key = 'payout_hold:' || p.id)""",
    prepared=False,
)
REWARDS = Query(
    "t_crash_rewards",
    "SELECT count(*) FROM earnings WHERE type = 'video_reward' AND user_id = CAST(:user_id AS uuid) AND reference = :video_id",
    prepared=False,
)


# --- the world: a private database, a server, users with money ---------------------------------------
@dataclass
class Person:
    id: str
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    pg: Postgres
    server: Server
    owner: Conn
    admin: Person
    payers: list[Person]
    answers: list[tuple[str, Answer]] = field(default_factory=list)  # every answer of every phase

    def record(self, what: str, answer: Answer) -> Answer:
        self.answers.append((what, answer))
        return answer

    @property
    def release(self) -> Path:
        """The file whose appearance lets every paused request go on (EARNPAY_FAULT_PAUSE's ``until``)."""
        return self.pg.dir / "release-paused-requests"

    def reconnect_owner(self) -> None:
        with contextlib.suppress(Exception):  # the database it spoke to was stopped under it
            self.owner.raw.close()
        self.owner = self.pg.owner(get_settings())

    def running_server(self) -> Server:
        """The fault-point server, started (again) if a test killed it; no request paused."""
        self.release.unlink(missing_ok=True)
        if not self.server.running:
            self.server.start()
        return self.server


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    settings = get_settings()
    pg = Postgres()
    try:
        create_database_if_missing(pg.server_url, DB_NAME)
        owner = pg.owner(settings)
        migrate(owner)
        owner.script(f"ALTER ROLE {APP_ROLE} LOGIN")
        owner.raw.close()
        yield pg
    finally:
        pg.destroy()


def _signup(server: Server, owner: Conn, n: int, name: str) -> tuple[Person, str]:
    """Signs up and confirms the address with a token issued as send_notifications issues the emailed one."""
    from functions.auth import tokens

    email = f"{name}-{n}-{uuid.uuid4().hex[:8]}@example.com"
    ip = {"X-Forwarded-For": f"10.9.{n}.{n + 1}"}
    answer = server.call("POST", "/auth/signup", json_body={"email": email, "password": PASSWORD, "display_name": name}, headers=ip)
    assert answer.status == 202, answer
    token, _ = tokens.issue(owner, owner.value(USER_ID, email=email), "verify_email", minutes=60)
    answer = server.call("POST", "/auth/email/verify", json_body={"token": token}, headers=ip)
    assert answer.status == 200, answer
    return Person(answer.body["user"]["id"], answer.body["session"]["token"]), email


@pytest.fixture(scope="module")
def world(pg: Postgres) -> Iterator[World]:
    """Users with money and a method, an admin, and the server every fault test uses: keyed requests
    stop at their fault point for up to 30 s (the test kills first) or until the release file appears;
    claims have a 2-second lease."""
    settings = get_settings()
    owner = pg.owner(settings)
    release = pg.dir / "release-paused-requests"
    server = Server(
        pg,
        env={
            "IDEMPOTENCY_LEASE_S": str(LEASE_S),
            "EARNPAY_FAULT_PAUSE": f"before_call=30,after_call=30,until={release}",
            # the admin's money moves span the whole module: one second-factor code keeps counting
            "MFA_STEP_UP_MINUTES": "60",
        },
    )
    server.start()
    try:
        admin, email = _signup(server, owner, 0, "admin")
        owner.execute(SET_ROLE, id=admin.id)
        login = server.call(
            "POST", "/auth/login", json_body={"email": email, "password": PASSWORD}, headers={"X-Forwarded-For": "10.9.0.1"}
        )
        assert login.status == 200, login
        admin.token = login.body["session"]["token"]  # a staff session, as create-admin's first login
        enrolment = server.call("POST", "/auth/mfa/enrol", headers=admin.auth)  # staff need the second factor
        assert enrolment.status == 200, enrolment
        code = pyotp.TOTP(enrolment.body["secret"]).now()
        assert server.call("POST", "/auth/mfa/confirm", json_body={"code": code}, headers=admin.auth).status == 200
        payers = [_signup(server, owner, i + 1, "payer")[0] for i in range(10)]
        for p in payers:
            owner.execute(SET_KYC, id=p.id)
            added = server.call(
                "POST",
                "/payouts/methods",
                json_body={"type": "paypal", "email": f"p-{p.id[:8]}@example.com", "password": PASSWORD},
                headers=p.auth,
            )
            assert added.status == 201, added
            funded = server.call(
                "POST",
                "/admin/adjustments",
                json_body={"user_id": p.id, "amount_micros": 1_000_000_000, "reason": "crash test funds"},
                headers={**admin.auth, "Idempotency-Key": f"fund-{p.id}"},
            )
            assert funded.status == 201, funded
        w = World(pg, server, owner, admin, payers)
        yield w
    finally:
        server.stop()
    with contextlib.suppress(Exception):  # a failed test may leave it talking to a stopped server
        w.owner.raw.close()


# --- one round of concurrent work ---------------------------------------------------------------------
@dataclass
class Round:
    """The keyed requests and completions of one fault, and their first answers."""

    payouts: dict[str, Person] = field(default_factory=dict)  # key -> payer
    adjustments: dict[str, Person] = field(default_factory=dict)  # key -> target
    videos: dict[str, Person] = field(default_factory=dict)  # video id -> viewer
    first: list[Future[Answer]] = field(default_factory=list)

    def idem_keys(self) -> list[str]:
        return [*self.payouts, *self.adjustments]


def _payout(server: Server, w: World, key: str, payer: Person) -> Answer:
    return w.record(
        f"payout {key}",
        server.call(
            "POST",
            "/payouts/",
            json_body={"amount_cents": PAYOUT_CENTS, "password": PASSWORD},
            headers={**payer.auth, "Idempotency-Key": key},
        ),
    )


def _adjust(server: Server, w: World, key: str, target: Person) -> Answer:
    return w.record(
        f"adjustment {key}",
        server.call(
            "POST",
            "/admin/adjustments",
            json_body={"user_id": target.id, "amount_micros": ADJUST_MICROS, "reason": "crash test"},
            headers={**w.admin.auth, "Idempotency-Key": key},
        ),
    )


def _complete(server: Server, w: World, video: str, viewer: Person) -> Answer:
    return w.record(
        f"completion {video}",
        server.call(
            "POST", f"/progress/{video}", json_body={"position_seconds": 15, "playing": True, "client_seq": 2}, headers=viewer.auth
        ),
    )


def _prepare_round(server: Server, w: World, tag: str) -> Round:
    """Keys for 10 payouts and 4 adjustments (most of them paused at a fault point) and 4 videos each a
    heartbeat away from completion."""
    r = Round()
    points = ["before_call", "after_call"]
    for i, payer in enumerate(w.payers):
        point = points[i % 2] if i < 8 else None  # two run straight through
        r.payouts[f"pause-{point}-{tag}-{uuid.uuid4().hex}" if point else f"plain-{tag}-{uuid.uuid4().hex}"] = payer
    for i, target in enumerate(w.payers[:4]):
        r.adjustments[f"pause-{points[i % 2]}-{tag}-adj-{uuid.uuid4().hex}"] = target
    for i, viewer in enumerate(w.payers[4:8]):
        made = server.call(
            "POST",
            "/admin/videos",
            json_body={"title": f"crash {tag} {i}", "duration_seconds": 20, "reward_micros": 3_000, "required_watch_pct": 50},
            headers=w.admin.auth,
        )
        assert made.status == 201, made
        video = str(made.body["id"])
        started = server.call(
            "POST", f"/progress/{video}", json_body={"position_seconds": 0, "playing": True, "client_seq": 1}, headers=viewer.auth
        )
        assert started.status == 200, started
        w.owner.execute(AGE, user_id=viewer.id, video_id=video)
        r.videos[video] = viewer
    return r


def _fire(pool: ThreadPoolExecutor, server: Server, w: World, r: Round) -> None:
    for key, payer in r.payouts.items():
        r.first.append(pool.submit(_payout, server, w, key, payer))
    for key, target in r.adjustments.items():
        r.first.append(pool.submit(_adjust, server, w, key, target))
    for video, viewer in r.videos.items():
        r.first.append(pool.submit(_complete, server, w, video, viewer))


def _wait_until_standing_at_the_fault_points(w: World, r: Round, timeout: float = 15.0) -> None:
    """Every paused request is where its key says: claimed (before_call) or committed (after_call)."""
    before = [k for k in r.idem_keys() if k.startswith("pause-before_call-")]
    after_payouts = [payout_id_for(p.id, k) for k, p in r.payouts.items() if k.startswith("pause-after_call-")]
    after_adjustments = [f"adjustment:{w.admin.id}:{k}" for k in r.adjustments if k.startswith("pause-after_call-")]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claimed = int(w.owner.value(OPEN_CLAIMS, keys=before))
        paid = int(w.owner.value(PAYOUTS_WITH_IDS, ids=after_payouts))
        adjusted = len(w.owner.all(ADJUSTMENTS_WITH_KEYS, keys=after_adjustments))
        if claimed == len(before) and paid == len(after_payouts) and adjusted == len(after_adjustments):
            return
        time.sleep(0.05)
    raise AssertionError(f"requests did not reach their fault points: {claimed}/{len(before)}, {paid}, {adjusted}")


def _settle(call: Callable[[], Answer], budget_s: float) -> list[Answer]:
    """Retries as a client would (honouring Retry-After) until a definitive answer; returns every answer."""
    answers: list[Answer] = []
    deadline = time.monotonic() + budget_s
    while True:
        answer = call()
        answers.append(answer)
        if answer.status is not None and answer.status < 500 and answer.status != 409:
            return answers
        assert time.monotonic() < deadline, f"no definitive answer within {budget_s} s: {answers}"
        wait = float(answer.headers.get("retry-after", "0.2")) if answer.status == 409 else 0.2
        time.sleep(min(wait, LEASE_S + 1))


def _settle_round(server: Server, w: World, r: Round) -> None:
    """After recovery, every key answers definitively within the lease plus one retry."""
    for key, payer in r.payouts.items():
        answers = _settle(lambda key=key, payer=payer: _payout(server, w, key, payer), LEASE_S + 3)
        assert sum(a.status == 409 for a in answers) <= 1, answers
        final = answers[-1]
        assert final.status == 201, final
        assert final.body["id"] == payout_id_for(payer.id, key) and final.body["amount"]["micros"] == PAYOUT_CENTS * 10_000
    for key, target in r.adjustments.items():
        answers = _settle(lambda key=key, target=target: _adjust(server, w, key, target), LEASE_S + 3)
        assert sum(a.status == 409 for a in answers) <= 1, answers
        final = answers[-1]
        assert final.status in (200, 201), final
        assert final.body["user_id"] == target.id and final.body["amount"]["micros"] == ADJUST_MICROS
        looked_up = server.call("GET", f"/admin/adjustments?user_id={target.id}&idempotency_key={key}", headers=w.admin.auth)
        assert looked_up.status == 200 and looked_up.body["entry_id"] == final.body["entry_id"], looked_up
    for video, viewer in r.videos.items():
        answers = _settle(lambda video=video, viewer=viewer: _complete(server, w, video, viewer), 10)
        assert answers[-1].status == 200, answers
        progress = server.call("GET", f"/progress/{video}", headers=viewer.auth)
        assert progress.status == 200 and progress.body["completed"], progress


def _check_effects(w: World, r: Round) -> None:
    """Exactly one payout and one hold per payout key, one entry per adjustment key, one reward per
    completed video; no orphan holds or payouts anywhere; no key left unanswered; the ledger verifies."""
    ids = [payout_id_for(p.id, k) for k, p in r.payouts.items()]
    assert int(w.owner.value(PAYOUTS_WITH_IDS, ids=ids)) == len(ids)
    holds = {row["reference"]: row["n"] for row in w.owner.all(HOLDS_OF, ids=ids)}
    assert holds == {i: 1 for i in ids}
    adjustments = {row["idempotency_key"]: row["n"] for row in w.owner.all(ADJUSTMENTS_WITH_KEYS, keys=_adjustment_keys(w, r))}
    assert adjustments == {k: 1 for k in _adjustment_keys(w, r)}
    for video, viewer in r.videos.items():
        assert w.owner.value(REWARDS, user_id=viewer.id, video_id=video) == 1
    assert w.owner.value(ORPHAN_HOLDS) == 0 and w.owner.value(ORPHAN_PAYOUTS) == 0
    assert w.owner.all(UNANSWERED, keys=r.idem_keys()) == []
    _verify_ledger(w.pg)
    five_hundreds = [(what, a) for what, a in w.answers if a.status is not None and a.status >= 500 and a.status != 503]
    assert five_hundreds == [], five_hundreds
    unexplained_503 = [(what, a) for what, a in w.answers if a.status == 503 and "retry-after" not in a.headers]
    assert unexplained_503 == []


def _adjustment_keys(w: World, r: Round) -> list[str]:
    return [f"adjustment:{w.admin.id}:{k}" for k in r.adjustments]


def _verify_ledger(pg: Postgres) -> None:
    env = {"DATABASE_URL": pg.app_url, "MIGRATE_DATABASE_URL": pg.admin_url, "EARNPAY_ENV": "test"}
    done = subprocess.run(
        [sys.executable, "main.py", "verify-ledger"], cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


# --- the faults ---------------------------------------------------------------------------------------
def test_killing_the_server_process_group_mid_request_strands_no_key(world: World) -> None:
    server = world.running_server()
    r = _prepare_round(server, world, "group")
    with ThreadPoolExecutor(32) as pool:
        _fire(pool, server, world, r)
        _wait_until_standing_at_the_fault_points(world, r)
        server.kill_group()
    # every paused request lost its connection with the process that served it
    assert sum(f.result().status is None for f in r.first) >= 12
    server.start()
    _settle_round(server, world, r)
    _check_effects(world, r)


def test_killing_only_the_workers_mid_request_strands_no_key(world: World) -> None:
    server = world.running_server()
    r = _prepare_round(server, world, "workers")
    with ThreadPoolExecutor(32) as pool:
        _fire(pool, server, world, r)
        _wait_until_standing_at_the_fault_points(world, r)
        killed = server.kill_workers()
        server.wait_new_workers(killed)
    assert sum(f.result().status is None for f in r.first) >= 12
    _settle_round(server, world, r)  # the same arbiter, new workers
    _check_effects(world, r)


def test_stopping_postgres_under_load_answers_503_and_recovers_without_a_restart(world: World) -> None:
    server = world.running_server()
    r = _prepare_round(server, world, "pgstop")
    payer = world.payers[9]
    with ThreadPoolExecutor(32) as pool:
        _fire(pool, server, world, r)
        _wait_until_standing_at_the_fault_points(world, r)
        world.pg.stop_immediately()
        # while it is down, new requests of every kind are 503 with Retry-After, never a 500
        during = [
            server.call(
                "POST",
                "/payouts/",
                json_body={"amount_cents": PAYOUT_CENTS, "password": PASSWORD},
                headers={**payer.auth, "Idempotency-Key": f"down-{uuid.uuid4().hex}"},
            ),
            server.call("GET", "/auth/me", headers=payer.auth),
            server.call(
                "POST",
                f"/progress/{next(iter(r.videos))}",
                json_body={"position_seconds": 15, "playing": True, "client_seq": 2},
                headers=r.videos[next(iter(r.videos))].auth,
            ),
        ]
        for answer in during:
            world.record("while the database is down", answer)
        # the paused requests go on against the dead database: 503 before the effect; after it the
        # effect is committed, and they answer it although the answer could not be stored
        world.release.touch()
        firsts = [f.result() for f in r.first]
    assert all(a.status == 503 and a.headers.get("retry-after") for a in during), during
    assert all(a.status is not None for a in firsts), firsts
    statuses = {key: a.status for key, a in zip(r.idem_keys(), firsts, strict=False)}
    assert all(s == 503 for k, s in statuses.items() if k.startswith("pause-before_call-")), statuses
    assert all(s in (200, 201) for k, s in statuses.items() if k.startswith("pause-after_call-")), statuses
    world.pg.start()
    world.reconnect_owner()
    # the same server recovers: the keys answer within the lease plus one retry, new requests work
    _settle_round(server, world, r)
    me = server.call("GET", "/auth/me", headers=world.payers[0].auth)
    assert me.status == 200, me
    _check_effects(world, r)
