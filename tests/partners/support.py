"""Test support for partner callbacks: a stand-in key endpoint, signing like the partners do, and set-up over the admin API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from functions.ledger import service as ledger
from shared.db import Query, get_db
from tests.helpers import Api, User

BUCKETS = Query(
    "t_partner_buckets",
    "SELECT available, pending, held, recovery, lifetime_earned FROM balances WHERE user_id = CAST(:u AS uuid)",
    prepared=False,
)
CALLBACK_LOG = Query(
    "t_partner_callback_log",
    "SELECT kind, transaction_id, outcome, reason FROM partner_callbacks WHERE partner_ref = :p ORDER BY id",
    prepared=False,
)


class KeyServer:
    """A stand-in of a network's key endpoint (AdMob's JSON format) on a free local port; counts fetches."""

    def __init__(self) -> None:
        self.keys: dict[str, ec.EllipticCurvePrivateKey] = {}
        self.fetches = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # the http.server API
                server.fetches += 1
                body = json.dumps({"keys": [server.entry(k, v) for k, v in server.keys.items()]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/verifier-keys.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @staticmethod
    def entry(key_id: str, key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
        public = key.public_key()
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return {"keyId": int(key_id), "pem": pem, "base64": base64.b64encode(der).decode()}

    def add_key(self, key_id: str) -> ec.EllipticCurvePrivateKey:
        key = ec.generate_private_key(ec.SECP256R1())
        self.keys[key_id] = key
        return key

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@contextmanager
def key_server() -> Iterator[KeyServer]:
    from functions.partners import keys

    keys.clear_cache()
    server = KeyServer()
    try:
        yield server
    finally:
        server.close()
        keys.clear_cache()


def admob_query(
    key: ec.EllipticCurvePrivateKey,
    key_id: str,
    *,
    user_id: str,
    transaction_id: str,
    amount: int,
    timestamp_ms: int | None = None,
    custom_data: str | None = "level 3 & bonus",
) -> str:
    """A query string as AdMob sends it: parameters in alphabetical order, then signature and key_id (signed: all before them)."""
    params = [("ad_network", "5450213213286189855"), ("ad_unit", "1234567890")]
    if custom_data is not None:
        params.append(("custom_data", custom_data))
    params += [
        ("reward_amount", str(amount)),
        ("reward_item", "coins"),
        ("timestamp", str(timestamp_ms if timestamp_ms is not None else int(time.time() * 1000))),
        ("transaction_id", transaction_id),
        ("user_id", user_id),
    ]
    content = "&".join(f"{k}={quote(v, safe='')}" for k, v in params)
    signature = key.sign(content.encode(), ec.ECDSA(hashes.SHA256()))
    return f"{content}&signature={base64.urlsafe_b64encode(signature).decode().rstrip('=')}&key_id={key_id}"


def offerwall_query(secret: bytes, **params: Any) -> str:
    """A postback: the given parameters plus the HMAC-SHA256 over them sorted by name (docs/partners.md)."""
    values = {k: str(v) for k, v in params.items()}
    values.setdefault("timestamp", str(int(time.time())))
    canonical = "&".join(f"{k}={values[k]}" for k in sorted(values))
    values["signature"] = hmac.new(secret, canonical.encode(), hashlib.sha256).hexdigest()
    return "&".join(f"{k}={quote(v, safe='')}" for k, v in values.items())


def new_partner(api: Api, admin: User, kind: str, **settings: Any) -> str:
    pid = ("rv-" if kind == "rewarded_video" else "ow-") + uuid.uuid4().hex[:10]
    body = {
        "id": pid,
        "kind": kind,
        "name": f"Test {kind}",
        "enabled": True,
        "reward_micros_per_unit": 1_000,  # 1 coin = $0.001
        "revenue_micros_per_unit": 1_500,  # the partner pays us $0.0015 per coin
        "max_units": 1_000,
        "daily_cap_micros": 2_000_000,
        "clearing_hours": 72,
        **settings,
    }
    resp = api.post("/admin/partners", user=admin, json=body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return pid


def set_secret(api: Api, admin: User, pid: str, secret: bytes, overlap_hours: int = 24) -> dict[str, Any]:
    resp = api.post(f"/admin/partners/{pid}/secrets", user=admin, json={"secret_hex": secret.hex(), "overlap_hours": overlap_hours})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return dict(resp.get_json())


def buckets(user_id: str) -> dict[str, int]:
    with get_db().connection() as conn:
        row = conn.one(BUCKETS, u=user_id)
    assert row is not None
    return {k: int(v) for k, v in row.items()}


def callback_log(pid: str) -> list[tuple[str, str | None, str, str]]:
    with get_db().connection() as conn:
        return [(r["kind"], r["transaction_id"], r["outcome"], r["reason"]) for r in conn.all(CALLBACK_LOG, p=pid)]


def verify_ok(user_id: str) -> None:
    with get_db().connection() as conn:
        result = ledger.verify(conn, user_id=user_id)
    assert result["ok"], result
