"""Partner callbacks: verify, apply exactly once (or refuse, with a reason), and always record.

A callback's life: throttle check (a source address that sent too many refused callbacks this minute
is turned away before any signature work) -> the partner (unknown, wrong kind or disabled: refused)
-> the signature (ECDSA over the query string for rewarded video, HMAC-SHA256 over the canonical
parameters for offerwalls) -> the fields (user, transaction id, amount, timestamp window) -> in one
transaction, serialised per (partner, transaction id): a reward is credited as ``partner_reward``
(pending for the partner's clearing period) with its row in ``partner_rewards``; a reversal claws
back the pending credit, or turns a cleared one into a recovery (functions/ledger/service.recover).
Every callback gets a ``partner_callbacks`` row with its outcome and reason.

Never sees Flask: routes hand over the partner id, the raw query string and the client address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from functions.ledger import service as ledger
from functions.partners import keys, signatures
from functions.partners import queries as q
from shared import audit, ratelimit
from shared import error_codes as codes
from shared import secrets as shared_secrets
from shared.audit import Actor
from shared.config import get_settings
from shared.db import Conn, get_db
from shared.errors import Conflict, NotFound, RateLimited, ValidationFailed
from shared.logs import get_logger

log = get_logger(__name__)

KINDS = ("rewarded_video", "offerwall")
_PARTNER_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{1,39}$")
_TXN = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_UNITS = re.compile(r"^[0-9]{1,12}$")
_TS = re.compile(r"^[0-9]{1,16}$")
BAD_WINDOW_S = 60
MAX_QUERY = 2048


class Refused(Exception):
    """A callback we will not apply; ``reason`` is recorded and ``status`` (None: the partner's error status) answered."""

    def __init__(self, reason: str, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class Answer:
    """What to send back: the partner's own body and content type (or a JSON error for no partner)."""

    status: int
    body: str
    content_type: str
    outcome: str
    reason: str


@dataclass(frozen=True)
class Callback:
    kind: str  # reward | reversal
    transaction_id: str
    user_id: str
    units: int


SECRET_AAD_PREFIX = "partner_secret:"  # noqa: S105  # not a secret: a database-stored secret's envelope is bound to its partner


# --- the callback pipeline -------------------------------------------------------------------------
def handle(route_kind: str, partner_ref: str, query: str, ip: str) -> Answer:
    """Runs one callback from ``ip`` to partner ``partner_ref`` on the ``route_kind`` route; never raises
    for bad input (unknown partner and throttling raise NotFound and RateLimited: no partner protocol applies)."""
    settings = get_settings()
    db = get_db()
    partner: dict[str, Any] | None = None
    log_kind, txn, user_ref = "reward", None, None
    bad_bucket = f"partner_bad:{ip}"
    try:
        with db.connection() as conn:
            hits = conn.value(q.BAD_HITS, bucket=bad_bucket, window=BAD_WINDOW_S) or 0
            if hits >= settings.partner_bad_callback_limit:
                raise Refused("throttled", 429)
            partner = conn.one(q.PARTNER, id=partner_ref) if _PARTNER_ID.match(partner_ref) else None
            if partner is None or partner["kind"] != route_kind:
                partner = None
                raise Refused("unknown_partner", 404)
            if not partner["enabled"]:
                raise Refused("partner_disabled")
            if route_kind == "rewarded_video":
                params = _verified_rewarded_video(partner, query)
            else:
                params = _verified_offerwall(conn, partner, query, ip)
            cb = _callback(partner, params, route_kind)
            log_kind, txn, user_ref = cb.kind, cb.transaction_id, cb.user_id
        with db.transaction() as conn:
            conn.value(q.LOCK_TRANSACTION, lock_key=f"{partner['id']}:{cb.transaction_id}")
            outcome = apply_reward(conn, partner, cb) if cb.kind == "reward" else apply_reversal(conn, partner, cb, source="callback")
            _record(conn, partner["id"], cb.kind, cb.transaction_id, cb.user_id, outcome, outcome, ip, query)
        return _answer(partner, outcome, outcome, None)
    except Refused as refusal:
        if refusal.reason != "throttled" and refusal.status != 503:
            try:
                with db.transaction() as conn:
                    ratelimit.hit(conn, bad_bucket, limit=10**9, window_s=BAD_WINDOW_S)
            except RateLimited:  # pragma: no cover - the limit above is only a counter
                pass
        with db.transaction() as conn:
            _record(conn, partner_ref, log_kind, txn, user_ref, "refused", refusal.reason, ip, query)
        if refusal.status == 429:
            raise RateLimited(
                "too many refused partner callbacks from this address", retry_after=BAD_WINDOW_S, code=codes.THROTTLED
            ) from None
        if partner is None:
            raise NotFound("no such partner for this kind of callback", code=codes.UNKNOWN_PARTNER) from None
        return _answer(partner, "refused", refusal.reason, refusal.status)


def _answer(partner: dict[str, Any], outcome: str, reason: str, status: int | None) -> Answer:
    ok = outcome in ("applied", "duplicate")
    return Answer(
        status=200 if ok else (status or int(partner["error_status"])),
        body=partner["answer_ok"] if ok else partner["answer_error"],
        content_type=partner["answer_content_type"],
        outcome=outcome,
        reason=reason,
    )


def _record(
    conn: Conn, partner_ref: str, kind: str, txn: str | None, user_ref: str | None, outcome: str, reason: str, ip: str, query: str
) -> None:
    conn.value(
        q.RECORD_CALLBACK,
        partner_ref=partner_ref[:64],
        kind=kind,
        transaction_id=txn[:128] if txn else None,
        user_ref=user_ref[:64] if user_ref else None,
        outcome=outcome,
        reason=reason[:64],
        source_ip=ip[:64],
        query=query[:MAX_QUERY],
    )


def _verified_rewarded_video(partner: dict[str, Any], query: str) -> dict[str, str]:
    try:
        content, signature, key_id = signatures.split_signed_query(query)
        try:
            key = keys.public_key(partner["key_url"], key_id)
        except keys.KeysUnavailable:
            raise Refused("key_endpoint_unavailable", 503) from None
        if key is None:
            raise Refused("unknown_key")
        signatures.verify_ecdsa(key, content, signature)
        return signatures.query_params(content)
    except signatures.BadSignature as exc:
        raise Refused(exc.reason) from None


def _verified_offerwall(conn: Conn, partner: dict[str, Any], query: str, ip: str) -> dict[str, str]:
    if partner["allowed_sources"] is not None:
        try:
            allowed = bool(conn.value(q.SOURCE_ALLOWED, cidrs=partner["allowed_sources"], ip=ip))
        except Exception:  # an address PostgreSQL cannot read is not on any list
            allowed = False
        if not allowed:
            raise Refused("source_not_allowed", 403)
    try:
        params = signatures.query_params(query)
        secrets = _live_secrets(conn, partner)
        if not secrets:
            raise Refused("no_secret")
        signatures.verify_hmac(secrets, params)
        return params
    except signatures.BadSignature as exc:
        raise Refused(exc.reason) from None


def secret_store() -> shared_secrets.SecretStore:
    """Where offerwall signing secrets live: Secret Manager when deployed, encrypted in the database elsewhere."""
    return shared_secrets.get_store(aad_prefix=SECRET_AAD_PREFIX, prefix=get_settings().partner_secret_prefix)


@dataclass(frozen=True)
class _Resolved:
    generation: int  # the partner's newest secret version when these were read (queries.PARTNER)
    loaded_at: float  # monotonic
    versions: tuple[tuple[dt.datetime | None, bytes], ...]  # (retires_at, secret), newest first


# A partner's resolved signing secrets, per instance, by (store, partner). Kept at most
# PARTNER_SECRET_CACHE_SECONDS, and dropped at once when the partner row's secret generation differs
# (a rotation, by any instance): the partner row is read by every callback anyway, so a rotation is seen
# by the next callback, and a forged signature never makes us read the store again.
_resolved: dict[tuple[str, str], _Resolved] = {}
_resolved_lock = threading.Lock()


def clear_secret_cache() -> None:
    with _resolved_lock:
        _resolved.clear()


def _live_secrets(conn: Conn, partner: dict[str, Any]) -> list[bytes]:
    store = secret_store()
    key = (store.kind, partner["id"])
    generation = int(partner["secret_generation"] or 0)
    now = time.monotonic()
    entry = _resolved.get(key)
    if entry is None or entry.generation != generation or now - entry.loaded_at >= get_settings().partner_secret_cache_seconds:
        versions = []
        for row in conn.all(q.LIVE_SECRETS, partner_id=partner["id"], store=store.kind):
            try:
                versions.append((row["retires_at"], store.access(partner["id"], row["reference"])))
            except shared_secrets.SecretNotFound as exc:  # destroyed or disabled in the store: it verifies nothing
                log.warning(
                    "partner %s secret version %s is unreadable: %s",
                    partner["id"],
                    row["version"],
                    exc,
                    extra={"event": "partner_secret_unreadable"},
                )
            except shared_secrets.SecretUnavailable:
                raise Refused("secret_store_unavailable", 503) from None
        entry = _Resolved(generation, now, tuple(versions))
        with _resolved_lock:
            if len(_resolved) > 1000:
                _resolved.clear()
            _resolved[key] = entry
    wall = dt.datetime.now(dt.UTC)
    return [secret for retires_at, secret in entry.versions if retires_at is None or retires_at > wall]


def _callback(partner: dict[str, Any], params: dict[str, str], route_kind: str) -> Callback:
    """The callback's fields, checked; the timestamp must be within the partner's window."""
    if route_kind == "rewarded_video":
        txn, user, amount, ts, kind = (
            params.get("transaction_id", ""),
            params.get("user_id", ""),
            params.get("reward_amount", ""),
            params.get("timestamp", ""),
            "reward",
        )
        scale = 1000.0  # AdMob: milliseconds
    else:
        txn, user, amount, ts = (
            params.get("transaction_id", ""),
            params.get("user_id", ""),
            params.get("amount", ""),
            params.get("timestamp", ""),
        )
        scale = 1.0  # seconds
        status = params.get("status", "credit")
        if status not in ("credit", "reversal"):
            raise Refused("invalid_status")
        kind = "reward" if status == "credit" else "reversal"
    if not _TXN.match(txn):
        raise Refused("invalid_transaction_id")
    try:
        user_id = str(uuid.UUID(user))
    except ValueError:
        raise Refused("unknown_user") from None
    if not _TS.match(ts):
        raise Refused("invalid_timestamp")
    if abs(time.time() - int(ts) / scale) > int(partner["timestamp_window_seconds"]):
        raise Refused("stale_timestamp")
    if not _UNITS.match(amount) or not 1 <= int(amount) <= int(partner["max_units"]):
        raise Refused("amount_out_of_range")
    return Callback(kind, txn, user_id, int(amount))


def _fingerprint(partner_id: str, cb: Callback) -> bytes:
    return hashlib.sha256(json.dumps([partner_id, cb.transaction_id, cb.user_id, cb.units], separators=(",", ":")).encode()).digest()


def apply_reward(conn: Conn, partner: dict[str, Any], cb: Callback) -> str:
    """Credits the reward once (call under the transaction's lock); 'applied' or 'duplicate', else Refused."""
    fingerprint = _fingerprint(partner["id"], cb)
    first = conn.one(q.REWARD, partner_id=partner["id"], transaction_id=cb.transaction_id)
    if first is not None:
        if bytes(first["request_hash"]) != fingerprint:
            raise Refused("duplicate_mismatch", 409)
        return "duplicate"
    if not conn.value(q.USER_EXISTS, user_id=cb.user_id):
        raise Refused("unknown_user")
    reward = cb.units * int(partner["reward_micros_per_unit"])
    revenue = cb.units * int(partner["revenue_micros_per_unit"])
    if reward > min(get_settings().credit_request_max_micros, ledger.MAX_ENTRY):
        raise Refused("amount_out_of_range")
    if int(conn.value(q.CREDITED_TODAY, partner_id=partner["id"], user_id=cb.user_id)) + reward > int(partner["daily_cap_micros"]):
        raise Refused("daily_cap_reached")
    posted = ledger.post(
        conn,
        user_id=cb.user_id,
        type="partner_reward",
        amount=reward,
        idempotency_key=f"partner:{partner['id']}:{cb.transaction_id}",
        source=f"partner:{partner['id']}",
        reference=cb.transaction_id,
        metadata={"partner_id": partner["id"], "transaction_id": cb.transaction_id, "units": cb.units, "revenue_micros": revenue},
        clears_in=dt.timedelta(hours=int(partner["clearing_hours"])),
    )
    conn.execute(
        q.INSERT_REWARD,
        partner_id=partner["id"],
        transaction_id=cb.transaction_id,
        user_id=cb.user_id,
        units=cb.units,
        reward_micros=reward,
        revenue_micros=revenue,
        request_hash=fingerprint,
        entry_id=posted.entry_id,
    )
    return "applied"


def apply_reversal(
    conn: Conn, partner: dict[str, Any], cb: Callback | None, *, source: str, transaction_id: str | None = None, reason: str | None = None
) -> str:
    """Takes a reward back (call under the transaction's lock): clawback while pending, else a recovery."""
    txn = cb.transaction_id if cb is not None else transaction_id
    row = conn.one(q.REWARD, partner_id=partner["id"], transaction_id=txn)
    if row is None:
        raise Refused("unknown_transaction", 404)
    if cb is not None and (row["user_id"] != cb.user_id or int(row["units"]) != cb.units):
        raise Refused("duplicate_mismatch", 409)
    if row["reversed_at"] is not None:
        return "duplicate"
    result = ledger.recover(
        conn,
        user_id=row["user_id"],
        entry_id=int(row["entry_id"]),
        source=f"partner:{partner['id']}",
        metadata={"partner_id": partner["id"], "transaction_id": txn, "via": source, **({"reason": reason} if reason else {})},
    )
    conn.execute(
        q.MARK_REVERSED,
        partner_id=partner["id"],
        transaction_id=txn,
        kind="recovery" if result["recovered"] else "clawback",
        entry_id=result["entry_id"],
    )
    return "applied"


# --- staff: partners as configuration ----------------------------------------------------------------


def _audit(conn: Conn, actor: Actor, action: str, target: str, before: Any, after: Any, reason: str | None = None) -> None:
    audit.record(
        conn,
        actor_id=actor.user_id,
        actor_role=actor.role,
        action=action,
        target_type="partner",
        target_id=target,
        before=before,
        after=after,
        request_id=actor.request_id,
        reason=reason,
    )


def present(row: dict[str, Any], secrets: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {
        k: row[k]
        for k in (
            "id",
            "name",
            "kind",
            "enabled",
            "reward_micros_per_unit",
            "revenue_micros_per_unit",
            "max_units",
            "clearing_hours",
            "key_url",
            "allowed_sources",
            "timestamp_window_seconds",
            "answer_ok",
            "answer_error",
            "answer_content_type",
            "error_status",
            "created_at",
            "updated_at",
        )
    }
    out["daily_cap"] = ledger.money(int(row["daily_cap_micros"]))
    out["secrets"] = [_secret_view(s) for s in secrets or []]
    return out


def _config_params(body: dict[str, Any]) -> dict[str, Any]:
    sources = body.get("allowed_sources")
    return {
        **{
            k: body[k]
            for k in (
                "name",
                "enabled",
                "reward_micros_per_unit",
                "revenue_micros_per_unit",
                "max_units",
                "daily_cap_micros",
                "clearing_hours",
                "key_url",
                "timestamp_window_seconds",
                "answer_ok",
                "answer_error",
                "answer_content_type",
                "error_status",
            )
        },
        "allowed_sources": "{" + ",".join(sources) + "}" if sources is not None else None,
    }


def _check_kind(kind: str, params: dict[str, Any]) -> None:
    if kind == "rewarded_video" and not params["key_url"]:
        raise ValidationFailed("a rewarded-video partner needs key_url (its public-key endpoint)", code=codes.KEY_URL_REQUIRED)
    if kind == "offerwall" and params["key_url"]:
        raise ValidationFailed("an offerwall partner signs with a secret, not a key endpoint", code=codes.KEY_URL_NOT_ALLOWED)
    if kind == "rewarded_video" and params["allowed_sources"] is not None:
        raise ValidationFailed("allowed_sources applies to offerwall partners", code=codes.ALLOWED_SOURCES_NOT_ALLOWED)


def list_partners(conn: Conn) -> dict[str, Any]:
    return {"items": [present(r, conn.all(q.SECRET_VERSIONS, partner_id=r["id"])) for r in conn.all(q.PARTNERS)]}


def create_partner(conn: Conn, actor: Actor, body: dict[str, Any]) -> dict[str, Any]:
    params = _config_params(body)
    _check_kind(body["kind"], params)
    row = conn.one(q.INSERT_PARTNER, id=body["id"], kind=body["kind"], **params)
    if row is None:
        raise Conflict("a partner with this id exists", code=codes.PARTNER_EXISTS)
    out = present(row)
    _audit(conn, actor, "partner.create", body["id"], None, out)
    return out


def update_partner(conn: Conn, actor: Actor, partner_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    before = conn.one(q.PARTNER, id=partner_id)
    if before is None:
        raise NotFound("no such partner", code=codes.UNKNOWN_PARTNER)
    # null clears only what may be absent (key_url, allowed_sources); elsewhere it means "unchanged"
    merged = {**before, **{k: v for k, v in changes.items() if v is not None or k in ("key_url", "allowed_sources")}}
    if "allowed_sources" not in changes and before["allowed_sources"] is not None:
        merged["allowed_sources"] = list(before["allowed_sources"])
    params = _config_params(merged)
    _check_kind(before["kind"], params)
    row = conn.one(q.UPDATE_PARTNER, id=partner_id, **params)
    assert row is not None
    out = present(row, conn.all(q.SECRET_VERSIONS, partner_id=partner_id))
    _audit(conn, actor, "partner.update", partner_id, present(before), out)
    return out


def disable_retired_secrets(conn: Conn, *, limit: int) -> dict[str, Any]:
    """Disables in Secret Manager the versions whose overlap is over (oldest first, up to ``limit``)
    and records each (``disabled_at``): a retired version verifies nothing here already, and once
    disabled nobody can read it from Secret Manager either. ``conn`` is in autocommit: each version
    is recorded as soon as Secret Manager has disabled it, and a failure part-way (Secret Manager
    unavailable: ``SecretUnavailable``, raised after the ones done are recorded) leaves the rest for
    the next run. Disabling twice is harmless, so a record lost after a disable only repeats it."""
    store = secret_store()
    rows = conn.all(q.RETIRED_TO_DISABLE, limit=limit)
    if rows and store.kind != "secret_manager":
        # a process on the database store cannot reach those versions (and must not pretend it did)
        return {"disabled": 0, "skipped": f"{len(rows)} retired Secret Manager version(s); this process uses the {store.kind} store"}
    disabled = 0
    not_ours: list[str] = []
    for row in rows:
        try:
            store.disable(row["partner_id"], row["secret_version"])
        except shared_secrets.SecretNotFound:  # not a version of this process's project and prefix: left as it is
            not_ours.append(f"{row['partner_id']} v{row['version']}")
            continue
        disabled += conn.execute(q.MARK_DISABLED, partner_id=row["partner_id"], version=row["version"])
    if not_ours:
        log.warning(
            "retired partner secret versions outside this project's prefix were not disabled: %s",
            ", ".join(not_ours),
            extra={"event": "partner_secret_not_disabled", "versions": not_ours},
        )
    return {"disabled": disabled, "not_ours": len(not_ours), "more": len(rows) == limit}


def rotate_secret(conn: Conn, actor: Actor, partner_id: str, secret_hex: str, overlap_hours: int) -> dict[str, Any]:
    """Adds a signing secret; the ones before it keep verifying for ``overlap_hours`` (0: retired now)."""
    partner = conn.one(q.PARTNER, id=partner_id)
    if partner is None:
        raise NotFound("no such partner", code=codes.UNKNOWN_PARTNER)
    if partner["kind"] != "offerwall":
        raise Conflict("only offerwall partners sign with a secret", code=codes.NO_SECRETS_FOR_KIND)
    conn.execute(q.RETIRE_SECRETS, partner_id=partner_id, overlap_seconds=overlap_hours * 3600)
    store = secret_store()
    reference = store.add_version(partner_id, bytes.fromhex(secret_hex))  # Secret Manager: a new version; never in our database
    row = conn.one(
        q.INSERT_SECRET,
        partner_id=partner_id,
        store=store.kind,
        envelope=reference if store.kind == "database" else None,
        secret_version=reference if store.kind == "secret_manager" else None,
    )
    assert row is not None
    versions = conn.all(q.SECRET_VERSIONS, partner_id=partner_id)
    # never the secret itself in the audit log: only which versions verify until when
    _audit(
        conn,
        actor,
        "partner.secret_rotate",
        partner_id,
        None,
        {"version": row["version"], "store": store.kind, "overlap_hours": overlap_hours},
    )
    return {"partner_id": partner_id, "version": row["version"], "secrets": [_secret_view(v) for v in versions]}


def _secret_view(row: dict[str, Any]) -> dict[str, Any]:
    return {"version": row["version"], "store": row["store"], "created_at": row["created_at"], "retires_at": row["retires_at"]}


def staff_reversal(conn: Conn, actor: Actor, partner_id: str, transaction_id: str, reason: str) -> dict[str, Any]:
    """A chargeback the partner reported another way (rewarded-video networks send no reversal callbacks)."""
    partner = conn.one(q.PARTNER, id=partner_id)
    if partner is None:
        raise NotFound("no such partner", code=codes.UNKNOWN_PARTNER)
    conn.value(q.LOCK_TRANSACTION, lock_key=f"{partner_id}:{transaction_id}")
    try:
        outcome = apply_reversal(conn, partner, None, source="staff", transaction_id=transaction_id, reason=reason)
    except Refused as exc:
        raise NotFound("no reward with this transaction id from this partner", code=codes.UNKNOWN_TRANSACTION) from exc
    row = conn.one(q.REWARD, partner_id=partner_id, transaction_id=transaction_id)
    assert row is not None
    _record(conn, partner_id, "reversal", transaction_id, row["user_id"], outcome, f"staff_{outcome}", "staff", "")
    if outcome == "applied":
        _audit(conn, actor, "partner.reversal", partner_id, None, {"transaction_id": transaction_id, "kind": row["reversal_kind"]}, reason)
    return reward_view(row, duplicate=outcome == "duplicate")


def reward_view(row: dict[str, Any], *, duplicate: bool) -> dict[str, Any]:
    return {
        "partner_id": row["partner_id"],
        "transaction_id": row["transaction_id"],
        "user_id": row["user_id"],
        "units": row["units"],
        "reward": ledger.money(int(row["reward_micros"])),
        "revenue": ledger.money(int(row["revenue_micros"])),
        "entry_id": row["entry_id"],
        "reversal_kind": row["reversal_kind"],
        "reversal_entry_id": row["reversal_entry_id"],
        "reversed_at": row["reversed_at"],
        "duplicate": duplicate,
    }


def callbacks(conn: Conn, partner_id: str, limit: int, before_id: int | None) -> dict[str, Any]:
    rows = conn.all(q.CALLBACKS, partner_id=partner_id, limit=limit, before_id=before_id)
    return {"items": rows}


def report(conn: Conn, from_day: dt.date, to_day: dt.date, partner_id: str | None) -> dict[str, Any]:
    """Per partner, per UTC day: revenue, rewards credited, reversed and paid out (cleared to users), and the margin."""
    if to_day < from_day or (to_day - from_day).days > 366:
        raise ValidationFailed("the report covers 1 to 367 days: from <= to", code=codes.INVALID_RANGE)
    items = []
    totals = dict.fromkeys(("revenue", "revenue_reversed", "credited", "reversed", "recovered", "paid_out"), 0)
    for r in conn.all(q.REPORT, from_day=from_day, to_day=to_day, partner_id=partner_id):
        margin = (int(r["revenue"]) - int(r["revenue_reversed"])) - (int(r["credited"]) - int(r["reversed"]))
        for k in totals:
            totals[k] += int(r[k])
        items.append(
            {
                "partner_id": r["partner_id"],
                "day": r["day"].isoformat(),
                "rewards": int(r["rewards"]),
                "reversals": int(r["reversals"]),
                **{k: ledger.money(int(r[k])) for k in totals},
                "margin": ledger.money(margin),
            }
        )
    margin_total = (totals["revenue"] - totals["revenue_reversed"]) - (totals["credited"] - totals["reversed"])
    return {
        "from": from_day.isoformat(),
        "to": to_day.isoformat(),
        "items": items,
        "totals": {**{k: ledger.money(v) for k, v in totals.items()}, "margin": ledger.money(margin_total)},
    }
