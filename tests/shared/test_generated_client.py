"""A Python client generated from docs/openapi.json (openapi-python-client) drives the main flows
against the live app: the document is good enough to build a typed client on.

The app runs in a real HTTP server (werkzeug, in a thread of this test process) on a free port; the
generated client talks to it over TCP with httpx, as any client would.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pyotp
import pytest
from werkzeug.serving import make_server

from functions.auth.queries import SET_ROLE
from functions.videos import service as videos
from shared.config import ROOT
from shared.db import Conn, Query, get_db
from tests.helpers import PASSWORD, random_ip, unique_email, verification_token

DOC = ROOT / "docs" / "openapi.json"
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
SET_KYC = Query("t_client_set_kyc", "UPDATE users SET kyc_status = :kyc WHERE id = CAST(:id AS uuid)", prepared=False)
AGE = Query(
    "t_client_age_progress",
    """UPDATE video_progress SET last_heartbeat_at = last_heartbeat_at - make_interval(secs => :seconds),
                                 stream_started_at = stream_started_at - make_interval(secs => :seconds)
        WHERE user_id = CAST(:user_id AS uuid) AND video_id = CAST(:video_id AS uuid)""",
    prepared=False,
)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """The client package, generated into a temporary directory and imported from there."""
    out = tmp_path_factory.mktemp("client")
    config = out / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter run: the generated code is imported as it is
    package = f"earnpay_client_{uuid.uuid4().hex[:8]}"
    result = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(DOC), "--meta", "none", "--output-path", str(out / package), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Warning" not in result.stdout + result.stderr, result.stdout + result.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module(package)
    finally:
        sys.path.remove(str(out))
        for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def base_url(apps: Any) -> Iterator[str]:
    """The dispatcher over every function, served over HTTP on a free port."""
    server = make_server("127.0.0.1", 0, apps, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="generated-client-server", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _api(client_pkg: ModuleType, area: str, operation: str) -> Any:
    return importlib.import_module(f"{client_pkg.__name__}.api.{area}.{area}_{operation}")


def test_the_generated_client_drives_the_main_flows(generated: ModuleType, base_url: str, owner_conn: Conn) -> None:
    m = importlib.import_module(f"{generated.__name__}.models")
    ip = {"X-Forwarded-For": random_ip()}
    anonymous = generated.Client(base_url=base_url, headers=ip, raise_on_unexpected_status=True)

    # --- sign up and log in: typed user, session and bonus ------------------------------------------
    email = unique_email("client")
    signup = _api(generated, "auth", "signup").sync_detailed(
        client=anonymous, body=m.SignupBody(email=email, password=PASSWORD, display_name="Generated Client")
    )
    assert signup.status_code == 202, signup.content
    assert isinstance(signup.parsed, m.Accepted), signup.content
    # the emailed link's token (issued as send_notifications issues it) confirms the address and signs in
    verified = _api(generated, "auth", "verify_email").sync(client=anonymous, body=m.TokenBody(token=verification_token(email)))
    assert isinstance(verified, m.VerifiedResponse)
    assert verified.user.email == email
    assert verified.user.email_verified
    assert isinstance(verified.session, m.SessionToken)
    assert verified.session.token_type == "Bearer"
    login = _api(generated, "auth", "login").sync(client=anonymous, body=m.LoginBody(email=email, password=PASSWORD))
    assert isinstance(login, m.LoginResponse)
    assert login.user.id == verified.user.id
    assert login.bonus is None  # a bare login earns nothing: bonuses come with verified watching
    user_id = login.user.id
    me = generated.AuthenticatedClient(base_url=base_url, token=login.session.token, headers=ip, raise_on_unexpected_status=True)
    profile = _api(generated, "auth", "me").sync(client=me)
    assert isinstance(profile, m.UserProfile)
    assert profile.kyc_status == "none"

    # --- videos and progress: heartbeats complete a video and credit its reward ---------------------
    with get_db().transaction() as conn:
        video_id = str(
            videos.create_video(conn, title="Client video", duration_seconds=20, reward_micros=2_500, required_watch_pct=50)["id"]
        )
    catalogue = _api(generated, "videos", "list_videos").sync(client=me)
    assert isinstance(catalogue, m.VideoList)
    listed = next(v for v in catalogue.items if v.id == video_id)
    assert isinstance(listed.reward, m.Money)
    assert (listed.reward.micros, listed.reward.formatted) == (2_500, "$0.0025")
    heartbeat = _api(generated, "progress", "heartbeat")
    done = None
    for seq, position in enumerate((0, 10), start=1):
        if seq > 1:
            assert owner_conn.execute(AGE, user_id=user_id, video_id=video_id, seconds=10.0) == 1
        done = heartbeat.sync(video_id, client=me, body=m.HeartbeatBody(position_seconds=position, playing=True, client_seq=seq))
        assert isinstance(done, m.HeartbeatResponse)
    assert done is not None
    assert done.completed
    assert isinstance(done.reward, m.Reward)
    assert done.reward.credited.micros == 2_500
    assert done.reward.withheld.formatted == "$0.00"
    # the day's first completed video brings the daily bonus; reward and bonus are pending until they clear
    assert isinstance(done.daily_bonus, m.DailyBonus)
    assert done.daily_bonus.total.currency == "USD"
    assert done.daily_bonus.total.micros > 0
    assert isinstance(done.balance, m.BalanceNow)
    assert done.balance.available.micros == 0
    progress = _api(generated, "progress", "get_progress").sync(video_id, client=me)
    assert isinstance(progress, m.Progress)
    assert progress.completed
    assert progress.reward is not None

    # --- earnings: history, stats, export -----------------------------------------------------------
    history = _api(generated, "earnings", "history").sync(client=me, limit=10)
    assert isinstance(history, m.HistoryPage)
    assert history.next_cursor is None
    reward = next(i for i in history.items if i.type_ == m.EntryType.VIDEO_REWARD)
    assert isinstance(reward, m.HistoryEntry)
    assert reward.amount.micros == 2_500
    assert reward.pending
    assert reward.balance_after.micros == 0
    assert reward.created_at.tzinfo is not None
    assert reward.clears_at is not None
    stats = _api(generated, "earnings", "stats").sync(client=me)
    assert isinstance(stats, m.Stats)
    assert stats.available.micros == 0
    assert stats.pending.micros == 2_500 + done.daily_bonus.total.micros
    assert len(stats.pending_entries) == len(history.items)
    assert stats.periods.today.by_type["video_reward"].micros == 2_500
    export = _api(generated, "earnings", "export").sync(client=me)
    assert isinstance(export, m.Export)
    assert export.count == len(export.items) == len(history.items)

    # --- an admin credits the user (idempotent: 201, then the replay) -------------------------------
    admin_email = unique_email("client-admin")
    _api(generated, "auth", "signup").sync(
        client=anonymous, body=m.SignupBody(email=admin_email, password=PASSWORD, display_name="Client Admin")
    )
    admin_user = _api(generated, "auth", "verify_email").sync(client=anonymous, body=m.TokenBody(token=verification_token(admin_email)))
    owner_conn.execute(SET_ROLE, id=admin_user.user.id, role="admin")
    admin_login = _api(generated, "auth", "login").sync(client=anonymous, body=m.LoginBody(email=admin_email, password=PASSWORD))
    assert admin_login.mfa == "enrolment_required"
    admin = generated.AuthenticatedClient(base_url=base_url, token=admin_login.session.token, headers=ip, raise_on_unexpected_status=True)
    # staff enrol a second factor before any staff route answers; enrolling counts as a fresh code
    enrolment = _api(generated, "auth", "mfa_enrol").sync(client=admin)
    assert isinstance(enrolment, m.MfaEnrolment)
    assert enrolment.otpauth_uri.startswith("otpauth://totp/")
    codes = _api(generated, "auth", "mfa_confirm").sync(client=admin, body=m.MfaCodeBody(code=pyotp.TOTP(enrolment.secret).now()))
    assert isinstance(codes, m.RecoveryCodes)
    assert len(codes.recovery_codes) == 10
    adjust = _api(generated, "admin", "adjust")
    key = uuid.uuid4().hex
    body = m.AdjustmentBody(user_id=user_id, amount_micros=50_000_000, reason="generated client test")
    credited = adjust.sync_detailed(client=admin, body=body, idempotency_key=key)
    assert credited.status_code == 201
    assert isinstance(credited.parsed, m.Adjustment)
    assert not credited.parsed.duplicate
    assert credited.parsed.amount.formatted == "$50.00"
    replayed = adjust.sync_detailed(client=admin, body=body, idempotency_key=key)
    assert replayed.status_code == 201
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert isinstance(replayed.parsed, m.Adjustment)
    assert replayed.parsed.entry_id == credited.parsed.entry_id
    detail = _api(generated, "admin", "user_detail").sync(user_id, client=admin)
    assert isinstance(detail, m.UserDetail)
    assert detail.balance.available.micros == credited.parsed.balance_after.micros

    # --- payouts: a method, a refusal without KYC (a typed error), then a payout --------------------
    method = _api(generated, "payouts", "add_method").sync(
        client=me, body=m.MethodCreateBody(type_=m.MethodCreateBodyType.PAYPAL, email=f"payee-{user_id[:8]}@example.com", password=PASSWORD)
    )
    assert isinstance(method, m.PayoutMethod)
    assert method.is_default
    request_payout = _api(generated, "payouts", "request_payout")
    refused = generated.AuthenticatedClient(base_url=base_url, token=login.session.token, headers=ip)
    no_kyc = request_payout.sync_detailed(client=refused, body=m.PayoutCreateBody(amount_cents=2_000, password=PASSWORD))
    assert no_kyc.status_code == 403
    assert isinstance(no_kyc.parsed, m.Error)
    assert no_kyc.parsed.error.code == "kyc_required"
    owner_conn.execute(SET_KYC, id=user_id, kyc="verified")
    payout = request_payout.sync_detailed(client=me, body=m.PayoutCreateBody(amount_cents=2_000, password=PASSWORD), idempotency_key=key)
    assert payout.status_code == 201, payout.content
    assert isinstance(payout.parsed, m.Payout), payout.content
    assert payout.parsed.amount.micros == 20_000_000
    assert payout.parsed.amount.formatted == "$20.00"
    assert payout.parsed.status == m.PayoutStatus.REQUESTED
    assert payout.parsed.method.id == method.id
    one = _api(generated, "payouts", "get_payout").sync(payout.parsed.id, client=me)
    assert isinstance(one, m.PayoutDetail)
    assert one.events[0].from_ is None
    assert one.events[0].to == m.PayoutEventTo.REQUESTED
    page = _api(generated, "payouts", "list_payouts").sync(client=me)
    assert isinstance(page, m.PayoutPage)
    assert [p.id for p in page.items] == [payout.parsed.id]
    review = _api(generated, "admin", "payouts_for_review").sync(client=admin)
    assert isinstance(review, m.ReviewPayoutPage)
    assert payout.parsed.id in {p.id for p in review.items}
    cancelled = _api(generated, "payouts", "cancel_payout").sync(payout.parsed.id, client=me)
    assert isinstance(cancelled, m.Payout)
    assert cancelled.status == m.PayoutStatus.CANCELLED


def test_every_answer_model_in_the_document_is_typed(generated: ModuleType) -> None:
    """No generated model is an empty bag of extra properties (what `{"type": "object"}` gave)."""
    import attrs

    models = importlib.import_module(f"{generated.__name__}.models")
    untyped = []
    for name in models.__all__:
        cls = getattr(models, name)
        if attrs.has(cls):
            typed = [f.name for f in attrs.fields(cls) if f.name != "additional_properties"]
            if not typed and not name.endswith(("Details", "Type0", "ByType", "ByStatus", "Headers", "Removed")):
                untyped.append(name)
    assert untyped == []
