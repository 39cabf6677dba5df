"""Signals (docs/fraud.md): canonical email (unique, with the migration that handles existing
duplicates), network prefixes, keyed device hashes and payout fingerprints, and their erasure."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from functions.risk import signals
from functions.risk.canonical import canonical_email
from shared.db import Conn, Query
from shared.migrate import migrate
from tests.helpers import PASSWORD, Api, random_ip, verification_token
from tests.progress.test_heartbeats import AGE, make_video

MIGRATIONS = Path(__file__).resolve().parents[2] / "shared" / "migrations"
USER_ID = Query("t_sig_user_id", "SELECT id::text FROM users WHERE email = :e", prepared=False)
OBSERVATIONS = Query(
    "t_risk_obs",
    "SELECT kind, host(ip) AS ip, prefix::text AS prefix, device_hash FROM risk_observations WHERE user_id = CAST(:u AS uuid) ORDER BY id",
    prepared=False,
)
FINGERPRINTS = Query("t_risk_fp", "SELECT destination_fingerprint FROM payout_methods WHERE user_id = CAST(:u AS uuid)", prepared=False)
SQL_CANONICAL = Query("t_risk_canon", "SELECT ep_canonical_email(:e) AS c", prepared=False)
USERS = Query(
    "t_risk_users", "SELECT email, canonical_email, canonical_duplicate_of::text AS dup FROM users ORDER BY created_at, id", prepared=False
)

CASES = [
    ("A.B+promo@Gmail.com", "ab@gmail.com"),
    ("a.b@googlemail.com", "ab@gmail.com"),
    ("first.last+x@outlook.com", "first.last@outlook.com"),
    ("first.last+x@example.com", "first.last+x@example.com"),  # unknown provider: tags may be real addresses
    ("Plain@Example.org", "plain@example.org"),
]


@pytest.mark.parametrize(("email", "canonical"), CASES)
def test_canonical_email_in_python_and_in_the_database_agree(owner_conn: Conn, email: str, canonical: str) -> None:
    assert canonical_email(email) == canonical
    assert owner_conn.one(SQL_CANONICAL, e=email.lower())["c"] == canonical


def test_one_mailbox_is_one_account(api: Api) -> None:
    base = f"jo.smith{uuid.uuid4().hex[:6]}"
    owner = api.signup(email=f"{base}@gmail.com")
    for variant in (f"{base.replace('.', '')}@gmail.com", f"{base}+2@gmail.com", f"{base.upper()}@googlemail.com"):
        resp = api.client.post(
            "/auth/signup", json={"email": variant, "password": PASSWORD, "display_name": "Again"}, headers={"X-Forwarded-For": random_ip()}
        )
        # the answer of any sign-up (no enumeration, issue 11); no second account, and the owner is told
        assert resp.status_code == 202 and resp.get_json()["status"] == "accepted", variant
        assert api.login(variant).status_code == 401
    kinds = [i["kind"] for i in api.get("/auth/notifications", user=owner).get_json()["items"]]
    assert kinds.count("signup_attempt") == 3


def test_signup_login_and_payout_record_address_prefix_and_a_keyed_device_hash(api: Api, owner_conn: Conn) -> None:
    install = f"install-{uuid.uuid4().hex}"
    email = f"obs-{uuid.uuid4().hex[:8]}@example.com"
    resp = api.client.post(
        "/auth/signup",
        json={"email": email, "password": PASSWORD, "display_name": "Obs"},
        headers={"X-Forwarded-For": "203.0.113.77", "X-Install-Id": install},
    )
    assert resp.status_code == 202
    uid = owner_conn.value(USER_ID, e=email)
    login = api.client.post(
        "/auth/login",
        json={"email": email, "password": PASSWORD},
        headers={"X-Forwarded-For": "2001:db8:aa:bb:1::9", "X-Install-Id": "bad id!"},
    )
    assert login.status_code == 200
    rows = owner_conn.all(OBSERVATIONS, u=uid)
    assert [(r["kind"], r["ip"], r["prefix"]) for r in rows] == [
        ("signup", "203.0.113.77", "203.0.113.0/24"),
        ("login", "2001:db8:aa:bb:1::9", "2001:db8:aa:bb::/64"),
    ]
    assert bytes(rows[0]["device_hash"]) == signals.device_hash(install) and install.encode() not in bytes(rows[0]["device_hash"])
    assert len(bytes(rows[0]["device_hash"])) == 32
    assert rows[1]["device_hash"] is None  # a malformed install id is no signal (and no error)
    # the heartbeat that completes a video records one more; ordinary heartbeats record nothing
    token = login.get_json()["session"]["token"]
    video = make_video(duration=10, reward=1_000)
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "203.0.113.78", "X-Install-Id": install}
    first = api.client.post(f"/progress/{video}", json={"position_seconds": 0, "playing": True, "client_seq": 1}, headers=headers)
    assert first.status_code == 200 and len(owner_conn.all(OBSERVATIONS, u=uid)) == 2
    owner_conn.execute(AGE, user_id=uid, video_id=video, seconds=10.0)
    done = api.client.post(f"/progress/{video}", json={"position_seconds": 10, "playing": True, "client_seq": 2}, headers=headers)
    assert done.get_json()["completed"]
    last = owner_conn.all(OBSERVATIONS, u=uid)[-1]
    assert (last["kind"], last["ip"], bytes(last["device_hash"])) == ("completion", "203.0.113.78", signals.device_hash(install))


def test_payout_destinations_get_one_keyed_fingerprint_per_destination(api: Api, owner_conn: Conn) -> None:
    a, b = api.signup(), api.signup()
    for user, email in ((a, "Shared.Wallet+1@gmail.com"), (b, "sharedwallet@gmail.com")):
        resp = api.post("/payouts/methods", user=user, json={"type": "paypal", "email": email, "password": PASSWORD})
        assert resp.status_code == 201, resp.get_data(as_text=True)
    fa = bytes(owner_conn.one(FINGERPRINTS, u=a.id)["destination_fingerprint"])
    fb = bytes(owner_conn.one(FINGERPRINTS, u=b.id)["destination_fingerprint"])
    assert fa == fb and len(fa) == 32 and b"wallet" not in fa


def test_erasure_removes_the_addresses_and_hashes(api: Api, owner_conn: Conn) -> None:
    email = f"gone-{uuid.uuid4().hex[:8]}@example.com"
    resp = api.client.post(
        "/auth/signup",
        json={"email": email, "password": PASSWORD, "display_name": "Gone"},
        headers={"X-Forwarded-For": "198.51.100.4", "X-Install-Id": "install-to-be-erased"},
    )
    assert resp.status_code == 202
    data = api.post("/auth/email/verify", json={"token": verification_token(email)}).get_json()
    uid, token = data["user"]["id"], data["session"]["token"]
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-For": "198.51.100.4"}
    added = api.client.post("/payouts/methods", json={"type": "paypal", "email": "gone@example.com", "password": PASSWORD}, headers=headers)
    assert added.status_code == 201
    erased = api.client.post("/privacy/erase", json={"password": PASSWORD, "confirm": "ERASE"}, headers=headers)
    assert erased.status_code == 200, erased.get_data(as_text=True)
    assert erased.get_json()["removed"]["risk_observations"] == 1
    assert all(r["ip"] is None and r["prefix"] is None and r["device_hash"] is None for r in owner_conn.all(OBSERVATIONS, u=uid))
    assert owner_conn.one(FINGERPRINTS, u=uid)["destination_fingerprint"] is None


def test_the_migration_keeps_the_oldest_of_existing_duplicates(scratch: Any, tmp_path: Path) -> None:
    files = sorted(MIGRATIONS.glob("*.sql"))

    def copy(names: list[Path], to: Path) -> Path:
        to.mkdir(parents=True)
        for f in names:
            shutil.copy(f, to / f.name)
        return to

    conn = scratch()
    migrate(conn, copy([f for f in files if int(f.name[:4]) < 100], tmp_path / "previous"))
    conn.script(
        """INSERT INTO users (email, password_hash, display_name, referral_code, created_at) VALUES
               ('jane.doe@gmail.com', 'x', 'Jane', 'AAAAAAAA', now() - interval '3 days'),
               ('janedoe+farm@gmail.com', 'x', 'Jane 2', 'BBBBBBBB', now() - interval '2 days'),
               ('other@example.com', 'x', 'Other', 'CCCCCCCC', now() - interval '1 day');"""
    )
    applied = migrate(conn, copy(files, tmp_path / "current"))
    assert min(applied) == 100
    rows = conn.all(USERS)
    first = conn.value(Query("t_first", "SELECT id::text FROM users WHERE email = 'jane.doe@gmail.com'", prepared=False))
    assert [(r["email"], r["canonical_email"], r["dup"]) for r in rows] == [
        ("jane.doe@gmail.com", "janedoe@gmail.com", None),
        ("janedoe+farm@gmail.com", None, first),  # keeps its login; flagged as a duplicate of the oldest
        ("other@example.com", "other@example.com", None),
    ]
    with pytest.raises(Exception, match="idx_users_canonical_email"):
        conn.script(
            "INSERT INTO users (email, password_hash, display_name, referral_code) VALUES ('j.a.n.e.d.o.e@gmail.com', 'x', 'J', 'DDDDDDDD')"
        )


def test_deployed_functions_refuse_to_hash_without_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.config import ConfigError, get_settings

    settings = get_settings().model_copy(update={"env": "production", "risk_hash_key": None})
    assert settings.is_production
    with pytest.raises(ConfigError, match="RISK_HASH_KEY"):
        signals.device_hash("install-123456", settings)
