"""Policy tests for the Terraform in infra/: what must hold for EarnPay's production setup.

The .tf and .tfvars files are parsed with python-hcl2 (no provider, no network): durability of the
database, dead-lettering of every push subscription, the scheduler's maintenance tasks, one service
account per function, private buckets, the database connection budget in every environment, and
that the deployed functions are exactly the entry points decorated in main.py.

Topics, push subscriptions and scheduler jobs live in infra/topology.yaml (read by Terraform with
yamldecode and by the local platform): the locals that load it are resolved here from the same file,
and the tests check that Terraform and the local platform really read it.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MAIN_PY = ROOT / "main.py"
TOPOLOGY = INFRA / "topology.yaml"
# The locals that load infra/topology.yaml, exactly as written in pubsub.tf and scheduler.tf.
TOPOLOGY_LOCALS = {
    "topology": '${yamldecode(file("${path.module}/topology.yaml"))}',
    "topics": "${local.topology.topics}",
    "scheduler_jobs": '${yamldecode(file("${path.module}/topology.yaml")).scheduler_jobs}',
}
ENVS = ("staging", "production")

MAINTENANCE_TASKS = {
    "outbox_sweep",
    "session_purge",
    "reconcile",
    "analyze",
    "reindex",
    "restore_drill",
    "clearing",
    "risk_scan",
    "partner_secrets_disable",
}
API_TOPICS = {"earnings-credit-requests", "payout-batches", "maintenance-tasks", "privacy-exports"}
HTTP_FUNCTIONS = {"auth", "videos", "progress", "earnings", "payouts", "kyc", "privacy", "admin", "health", "partner_callbacks"}
EVENT_FUNCTIONS = {
    "credit_earnings",
    "process_payouts",
    "run_maintenance",
    "kyc_document_uploaded",
    "export_user_data",
    "send_notifications",
}
PUBLIC_MEMBERS = {"allUsers", "allAuthenticatedUsers"}


# ---------------------------------------------------------------------------------------- parsing
def _norm(value: Any) -> Any:
    """python-hcl2 8 keeps string quotes and adds __is_block__/__comments__ keys; strip them all."""
    if isinstance(value, dict):
        return {_norm(k): _norm(v) for k, v in value.items() if not (isinstance(k, str) and k.startswith("__"))}
    if isinstance(value, list):
        return [_norm(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1].replace('\\"', '"')
    return value


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return _norm(hcl2.load(fh))


@functools.lru_cache(maxsize=1)
def _config() -> dict[str, Any]:
    """Every top-level construct of infra/*.tf merged: resources by type and name, locals, variables."""
    files = sorted(INFRA.glob("*.tf"))
    assert files, f"no Terraform files in {INFRA}"
    merged: dict[str, Any] = {"resource": {}, "locals": {}, "variable": {}, "check": {}, "data": {}}
    for path in files:
        doc = _load(path)
        for block in doc.get("resource", []):
            for rtype, named in block.items():
                for name, body in named.items():
                    assert name not in merged["resource"].setdefault(rtype, {}), f"duplicate {rtype}.{name}"
                    merged["resource"][rtype][name] = body
        for block in doc.get("locals", []):
            for key, value in block.items():
                assert key not in merged["locals"], f"local.{key} defined twice"
                merged["locals"][key] = value
        for kind in ("variable", "check", "data"):
            for block in doc.get(kind, []):
                merged[kind].update(block)
    return merged


@functools.cache
def _tfvars(env: str) -> dict[str, Any]:
    path = INFRA / "env" / f"{env}.tfvars"
    assert path.is_file(), f"missing {path}"
    return _load(path)


def _resources(rtype: str) -> dict[str, Any]:
    return _config()["resource"].get(rtype, {})


def _resource(rtype: str, name: str) -> dict[str, Any]:
    res = _resources(rtype)
    assert name in res, f"resource {rtype}.{name} is missing"
    return res[name]


@functools.lru_cache(maxsize=1)
def _topology() -> dict[str, Any]:
    with TOPOLOGY.open(encoding="utf-8") as fh:
        return dict(yaml.safe_load(fh))


def _local(name: str) -> Any:
    loc = _config()["locals"]
    assert name in loc, f"local.{name} is missing"
    if name in TOPOLOGY_LOCALS:  # loaded from infra/topology.yaml: its values, from the file itself
        assert loc[name] == TOPOLOGY_LOCALS[name], f"local.{name} must load infra/topology.yaml, not {loc[name]!r}"
        return _topology() if name == "topology" else _topology()[name]
    return loc[name]


def _block(body: dict[str, Any], name: str) -> dict[str, Any]:
    blocks = body.get(name)
    assert blocks, f"block {name!r} missing"
    return blocks[0] if isinstance(blocks, list) else blocks


def _flags(instance: dict[str, Any]) -> dict[str, str]:
    return {f["name"]: f["value"] for f in _block(instance, "settings").get("database_flags", [])}


def _lifecycle(body: dict[str, Any]) -> dict[str, Any]:
    return _block(body, "lifecycle")


# ----------------------------------------------------------------------------- connection budget
def _variable_default_reserve() -> int:
    """The optional() default of database.connection_reserve in variables.tf."""
    text = (INFRA / "variables.tf").read_text(encoding="utf-8")
    match = re.search(r"connection_reserve\s*=\s*optional\(number,\s*(\d+)\)", text)
    assert match, "database.connection_reserve must have an optional(number, N) default"
    return int(match.group(1))


def _effective_functions(env: str) -> dict[str, dict[str, int]]:
    """local.functions merged with the env's function_scaling, as functions.tf does."""
    overrides = _tfvars(env).get("function_scaling", {}) or {}
    unknown = set(overrides) - set(_local("functions"))
    assert not unknown, f"{env}.tfvars scales unknown functions: {sorted(unknown)}"
    result = {}
    for name, fn in _local("functions").items():
        own = overrides.get(name, {}) or {}
        result[name] = {
            key: int(own[key] if own.get(key) is not None else fn[key]) for key in ("min_instances", "max_instances", "db_pool_size")
        }
    return result


def connection_budget(functions: dict[str, dict[str, int]], reserve: int, max_connections: int) -> tuple[int, int]:
    """(worst-case connections, 80 % limit): sum of max_instances x pool size, plus the reserve."""
    total = sum(f["max_instances"] * f["db_pool_size"] for f in functions.values()) + reserve
    return total, (max_connections * 8) // 10


def _env_budget(env: str) -> tuple[int, int]:
    database = _tfvars(env)["database"]
    reserve = database.get("connection_reserve", _variable_default_reserve())
    return connection_budget(_effective_functions(env), int(reserve), int(database["max_connections"]))


@pytest.mark.parametrize("env", ENVS)
def test_connection_budget_fits_in_80_percent_of_max_connections(env: str) -> None:
    total, limit = _env_budget(env)
    assert total <= limit, f"{env}: worst-case connections {total} exceed 80 % of max_connections ({limit})"
    for name, fn in _effective_functions(env).items():
        assert fn["db_pool_size"] >= 1, f"{env}: {name} needs a pool of at least one connection"
        assert fn["min_instances"] <= fn["max_instances"], f"{env}: {name} min_instances > max_instances"


def test_connection_budget_checker_rejects_an_oversized_setup() -> None:
    functions = _effective_functions("production")
    total, _ = connection_budget(functions, 10, 10_000)
    too_small = (total * 10) // 8 - 5  # 80 % of this is below the budget
    over, limit = connection_budget(functions, 10, too_small)
    assert over > limit


def test_terraform_itself_enforces_the_connection_budget() -> None:
    guard = _resource("terraform_data", "connection_budget")
    condition = _block(_lifecycle(guard), "precondition")["condition"]
    assert "db_connection_budget" in condition and "db_connection_limit" in condition and "<=" in condition
    assert "connection_budget" in _config()["check"], "a check block should report the budget on every plan"
    text = (INFRA / "database.tf").read_text(encoding="utf-8")
    assert re.search(r"db_connection_limit\s*=\s*floor\(var\.database\.max_connections \* 0\.8\)", text)
    assert re.search(r"f\.max_instances \* f\.db_pool_size", text)


# ------------------------------------------------------------------------------------- database
def test_primary_is_durable_private_encrypted_postgres16() -> None:
    primary = _resource("google_sql_database_instance", "primary")
    settings = _block(primary, "settings")
    backup = _block(settings, "backup_configuration")
    ip = _block(settings, "ip_configuration")

    assert primary["database_version"] == "POSTGRES_16"
    assert settings["availability_type"] == "REGIONAL"
    assert primary["deletion_protection"] is True
    assert settings["deletion_protection_enabled"] is True
    assert _lifecycle(primary)["prevent_destroy"] is True
    assert backup["enabled"] is True
    assert backup["point_in_time_recovery_enabled"] is True
    assert "transaction_log_retention_days" in backup["transaction_log_retention_days"]
    assert _block(backup, "backup_retention_settings")["retained_backups"] == "${var.database.retained_backups}"
    assert ip["ssl_mode"] == "ENCRYPTED_ONLY"
    assert ip["ipv4_enabled"] is False, "the database must have no public IP"
    assert 'google_kms_crypto_key.keys["cloudsql"]' in primary["encryption_key_name"]
    assert "maintenance_window" in settings
    assert _resource("google_sql_database", "earnpay")["name"] == "earnpay"


@pytest.mark.parametrize("env", ENVS)
def test_backups_and_pitr_windows_per_env(env: str) -> None:
    database = _tfvars(env)["database"]
    assert database["transaction_log_retention_days"] == 7, "PITR needs 7 days of WAL"
    assert database["retained_backups"] >= 30, "keep at least 30 daily backups"


def test_database_flags() -> None:
    required = {
        "log_min_duration_statement": "500",
        "cloudsql.iam_authentication": "on",
        "log_checkpoints": "on",
        "log_connections": "on",
        "log_disconnections": "on",
        "log_lock_waits": "on",
        "log_temp_files": "0",
    }
    for name in ("primary", "replica"):
        flags = _flags(_resource("google_sql_database_instance", name))
        for flag, value in required.items():
            assert flags.get(flag) == value, f"{name}: flag {flag} should be {value!r}, is {flags.get(flag)!r}"
        assert "var.database.max_connections" in flags.get("max_connections", ""), f"{name}: max_connections must follow the variable"


@pytest.mark.parametrize("env", ENVS)
def test_read_replicas_by_for_each_in_every_env(env: str) -> None:
    replica = _resource("google_sql_database_instance", "replica")
    assert replica["for_each"] == "${var.read_replicas}"
    assert "google_sql_database_instance.primary" in replica["master_instance_name"]
    assert "cloudsql" in replica["encryption_key_name"]
    assert _block(_block(replica, "settings"), "ip_configuration")["ipv4_enabled"] is False
    replicas = _tfvars(env).get("read_replicas", {})
    assert len(replicas) >= 1, f"{env}.tfvars must define at least one read replica"


def test_every_function_has_an_iam_database_user() -> None:
    users = _resource("google_sql_user", "iam")
    assert users["type"] == "CLOUD_IAM_SERVICE_ACCOUNT"
    assert "google_service_account.fn" in users["for_each"]
    assert "trimsuffix" in users["name"] and ".gserviceaccount.com" in users["name"]


# ------------------------------------------------------------------------------------- functions
def _decorated_entry_points() -> dict[str, str]:
    """name -> "http" | "cloud_event" for every functions_framework-decorated function in main.py."""
    assert MAIN_PY.is_file(), f"{MAIN_PY} is missing"
    tree = ast.parse(MAIN_PY.read_text(encoding="utf-8"), filename=str(MAIN_PY))
    found = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for dec in node.decorator_list:
            target = dec.func if isinstance(dec, ast.Call) else dec
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "functions_framework"
                and target.attr in ("http", "cloud_event")
            ):
                found[node.name] = target.attr
    return found


def test_deployed_functions_are_exactly_the_entry_points_of_main_py() -> None:
    deployed = _local("functions")
    decorated = _decorated_entry_points()
    assert set(deployed) == set(decorated), (
        f"not deployed: {sorted(set(decorated) - set(deployed))}; deployed but not in main.py: {sorted(set(deployed) - set(decorated))}"
    )
    for name, kind in decorated.items():
        trigger = deployed[name]["trigger"]
        assert (kind == "http") == (trigger == "http"), f"{name}: main.py says {kind}, Terraform trigger is {trigger}"


def test_function_map_matches_the_public_surface() -> None:
    functions = _local("functions")
    assert {k for k, f in functions.items() if f["trigger"] == "http"} == HTTP_FUNCTIONS
    assert {k for k, f in functions.items() if f["trigger"] != "http"} == EVENT_FUNCTIONS
    fn = _resource("google_cloudfunctions2_function", "fn")
    assert fn["for_each"] == "${local.function_config}"
    assert _block(fn, "build_config")["entry_point"] == "${each.key}"
    assert "ALLOW_INTERNAL_ONLY" in _block(fn, "service_config")["ingress_settings"]
    consumers = {t: c["consumer"] for t, c in _local("topics").items() if c["consumer"] not in (None, "null")}
    assert consumers == {
        "earnings-credit-requests": "credit_earnings",
        "payout-batches": "process_payouts",
        "maintenance-tasks": "run_maintenance",
        "privacy-exports": "export_user_data",
        "notifications": "send_notifications",
    }
    for name, f in functions.items():
        assert (f["trigger"] == "pubsub") == (f["topic"] not in (None, "null")), f"{name}: topic and trigger disagree"
        if f["topic"] not in (None, "null"):
            assert consumers[f["topic"]] == name


def test_kyc_upload_trigger_is_a_gcs_finalize_event_on_the_kyc_bucket() -> None:
    assert _local("functions")["kyc_document_uploaded"]["trigger"] == "gcs"
    trigger = _block(_block(_resource("google_cloudfunctions2_function", "fn"), "dynamic")["event_trigger"], "content")
    assert trigger["event_type"] == "google.cloud.storage.object.v1.finalized"
    assert trigger["retry_policy"] == "RETRY_POLICY_RETRY"
    assert "kyc-documents" in _block(trigger, "event_filters")["value"]


def test_one_service_account_per_function_and_none_shared() -> None:
    sa = _resource("google_service_account", "fn")
    assert sa["for_each"] == "${local.function_config}"
    fn = _resource("google_cloudfunctions2_function", "fn")
    assert _block(fn, "service_config")["service_account_email"] == "${google_service_account.fn[each.key].email}"
    # account_id = substr("fn-<name with - for _>", 0, 30): must stay unique after truncation
    ids = [("fn-" + name.replace("_", "-"))[:30] for name in _local("functions")]
    assert len(ids) == len(set(ids)), f"service account ids collide: {ids}"
    assert all(len(i) >= 6 for i in ids), "service account ids must be at least 6 characters"


def test_payout_kek_is_granted_only_to_the_functions_that_need_it() -> None:
    functions = _local("functions")
    encrypt = {k for k, f in functions.items() if f["kms"] == "encrypt"}
    decrypt = {k for k, f in functions.items() if f["kms"] == "decrypt"}
    assert encrypt == {"payouts", "admin", "privacy"}
    assert decrypt <= {"process_payouts", "export_user_data", "partner_callbacks"}
    assert _local("kms_roles")["encrypt"] == "roles/cloudkms.cryptoKeyEncrypterDecrypter"


def test_kms_keys_rotate_every_90_days_and_cannot_be_destroyed() -> None:
    keys = _resource("google_kms_crypto_key", "keys")
    assert keys["rotation_period"] == "7776000s"
    assert _lifecycle(keys)["prevent_destroy"] is True
    assert {"cloudsql", "storage", "payout-details-kek"} <= set(_local("kms_keys"))


# ---------------------------------------------------------------------------------------- pubsub
def test_api_surface_topics_exist() -> None:
    topics = _resource("google_pubsub_topic", "this")
    assert topics["for_each"] == "${local.topics}"
    names = set(_local("topics"))
    assert names >= API_TOPICS | {"domain-events"}, f"missing topics: {sorted(API_TOPICS - names)}"
    assert topics["message_retention_duration"], "topics keep messages for replay"


def test_every_push_subscription_has_a_dead_letter_topic() -> None:
    subs = _resources("google_pubsub_subscription")
    assert subs, "no subscriptions defined"
    dead_letter_topic = _resource("google_pubsub_topic", "dead_letter")
    for name, sub in subs.items():
        if sub["topic"].startswith("${google_pubsub_topic.dead_letter["):
            # the hold subscriptions on the dead-letter topics themselves: kept, never retried
            assert sub["for_each"] == dead_letter_topic["for_each"], f"{name}: one hold subscription per dead-letter topic"
            continue
        policy = _block(sub, "dead_letter_policy")
        assert policy["dead_letter_topic"].startswith("${google_pubsub_topic.dead_letter["), f"{name}: dead letters go nowhere"
        assert sub["for_each"] == dead_letter_topic["for_each"], f"{name}: every subscription needs its own dead-letter topic"
        assert "retry_policy" in sub and "push_config" in sub and "ack_deadline_seconds" in sub
        assert "oidc_token" in _block(sub, "push_config"), f"{name}: push must authenticate with OIDC"
    for topic, cfg in _local("topics").items():
        if cfg["consumer"] not in (None, "null"):
            assert 5 <= cfg["max_delivery_attempts"] <= 10, f"{topic}: max_delivery_attempts out of 5..10"
            assert 10 <= cfg["ack_deadline"] <= 600
            timeout = _local("functions")[cfg["consumer"]]["timeout"]
            assert cfg["ack_deadline"] > timeout, f"{topic}: ack deadline must exceed the consumer's timeout"
    # Pub/Sub's service agent forwards dead letters: publisher on DLQs, subscriber on sources.
    assert "dead_letter" in _resource("google_pubsub_topic_iam_member", "dead_letter_publisher")["topic"]
    assert _resource("google_pubsub_subscription_iam_member", "dead_letter_subscriber")["role"] == "roles/pubsub.subscriber"


def test_terraform_and_the_local_platform_read_one_topology() -> None:
    """infra/topology.yaml is the one source: Terraform's locals load it, the push subscriptions take
    their retry policy from it, and the local platform (shared/topology.py) reads the same file."""
    from shared import topology

    for name in TOPOLOGY_LOCALS:
        _local(name)  # asserts the expression
    retry = _block(_resource("google_pubsub_subscription", "push"), "retry_policy")
    assert retry == {
        "minimum_backoff": "${local.topology.retry_policy.minimum_backoff}",
        "maximum_backoff": "${local.topology.retry_policy.maximum_backoff}",
    }
    assert _topology()["retry_policy"] == {"minimum_backoff": "10s", "maximum_backoff": "600s"}
    local = topology.load(TOPOLOGY)
    assert topology.DEFAULT_PATH == TOPOLOGY
    assert {t.name: (t.consumer, t.ack_deadline, t.max_delivery_attempts) for t in local.topics} == {
        name: (cfg["consumer"], cfg["ack_deadline"], cfg["max_delivery_attempts"]) for name, cfg in _local("topics").items()
    }
    assert {j.name: (j.schedule, j.topic, j.body) for j in local.jobs} == {
        name: (job["schedule"], job["topic"], job["body"]) for name, job in _local("scheduler_jobs").items()
    }
    # every job publishes to a topic that exists and has a consumer; every consumer is an event function
    consumers = {t.name: t.consumer for t in local.topics}
    assert all(consumers.get(j.topic) for j in local.jobs), "a scheduler job publishes to a topic nobody consumes"
    assert {c for c in consumers.values() if c} <= set(EVENT_FUNCTIONS)


# ---------------------------------------------------------------------------------------- alerts
def _conditions(policy: dict[str, Any]) -> list[dict[str, Any]]:
    """A policy's static condition thresholds, plus the thresholds of its dynamic conditions."""
    found = [_block(c, "condition_threshold") for c in policy.get("conditions", [])]
    for dyn in policy.get("dynamic", []):
        for name, body in dyn.items():
            if name == "conditions":
                found.append(_block(_block(body, "content"), "condition_threshold"))
    return found


def _runbook_anchors() -> set[str]:
    """GitHub's anchors for the headings of docs/operations.md."""
    text = (ROOT / "docs" / "operations.md").read_text(encoding="utf-8")
    headings = re.findall(r"^#+ (.+)$", text, flags=re.M)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


def test_the_alerts_the_product_names_exist() -> None:
    policies = _resources("google_monitoring_alert_policy")
    metrics = _local("log_metrics")
    # query time over 500 ms: a warning, from the app's slow_query events and PostgreSQL's own log
    slow = policies["slow_queries"]
    assert slow["severity"] == "WARNING"
    assert 'jsonPayload.event="slow_query"' in metrics["earnpay/slow_query"]["filter"]
    assert any("db_slow_statement" in c["filter"] for c in _conditions(slow))
    # connections over 80 % of max_connections: critical
    conns = policies["db_connections"]
    assert conns["severity"] == "CRITICAL"
    assert _local("connections_threshold") == "${floor(var.database.max_connections * 0.8)}"
    assert [c["threshold_value"] for c in _conditions(conns)] == ["${local.connections_threshold}"]
    # failed credits and payout errors: immediate (one log line or one dead-lettered message) and critical
    events = _local("log_event_alerts")
    log_event = policies["log_event"]
    assert log_event["for_each"] == "${local.log_event_alerts}"
    immediate = _conditions(log_event)
    assert len(immediate) == 2
    assert all(c["threshold_value"] == 0 and c["duration"] == "0s" for c in immediate)
    assert [c["filter"] for c in immediate if "pubsub_topic" in c["filter"]], "no dead-letter condition"
    dead_letters = _resource("google_pubsub_topic", "dead_letter")["for_each"]
    assert dead_letters == "${local.push_subscriptions}"
    pushed = {f"{topic}-push" for topic, cfg in _local("topics").items() if cfg["consumer"] not in (None, "null")}
    wanted = {
        "credit": ("earnpay/credit_failed", "earnings-credit-requests-push"),
        "payout": ("earnpay/payout_failed", "payout-batches-push"),
    }
    for key, (metric, dead_letter) in wanted.items():
        assert events[key]["severity"] == "CRITICAL"
        assert events[key]["metric"] == metric
        assert events[key]["dead_letter"] == dead_letter
    for key, alert in events.items():
        assert alert["metric"] in metrics, f"{key}: unknown log metric {alert['metric']}"
        assert alert["dead_letter"] in (None, "null") or alert["dead_letter"] in pushed, f"{key}: no such push subscription"
    assert 'jsonPayload.event=("credit_failed"' in metrics["earnpay/credit_failed"]["filter"]
    assert '"payout_failed"' in metrics["earnpay/payout_failed"]["filter"]
    # every policy links to a runbook heading that exists
    anchors = _runbook_anchors()
    for alert in events.values():
        assert alert["runbook"] in anchors, f"docs/operations.md has no heading for #{alert['runbook']}"
    for alert in _local("otel_alerts").values():
        assert alert["runbook"] in anchors, f"docs/operations.md has no heading for #{alert['runbook']}"
    for name, policy in policies.items():
        if name not in ("log_event", "otel"):
            content = _block(policy, "documentation")["content"]
            anchor = content.rsplit("#", 1)[1]
            assert anchor in anchors, f"{name}: docs/operations.md has no heading for #{anchor}"


# ------------------------------------------------------------------------------------- scheduler
def test_scheduler_covers_every_maintenance_task_and_payout_batches() -> None:
    jobs = _local("scheduler_jobs")
    tasks = {j["body"]["task"] for j in jobs.values() if j["topic"] == "maintenance-tasks"}
    assert tasks == MAINTENANCE_TASKS, f"missing: {sorted(MAINTENANCE_TASKS - tasks)}, unexpected: {sorted(tasks - MAINTENANCE_TASKS)}"
    payouts = [j for j in jobs.values() if j["topic"] == "payout-batches"]
    assert len(payouts) == 1
    assert payouts[0]["schedule"] == "*/15 * * * *"
    assert payouts[0]["body"] == {"batch_size": 1000}
    job = _resource("google_cloud_scheduler_job", "this")
    assert job["for_each"] == "${local.scheduler_jobs}"
    assert job["time_zone"] == "UTC"
    by_task = {j["body"].get("task"): j["schedule"] for j in jobs.values()}
    assert by_task["outbox_sweep"] == "* * * * *"
    assert by_task["risk_scan"] == "* * * * *"  # detection latency: at most a minute plus one scan (docs/fraud.md)
    # monthly: one fixed day of the month, every month
    minute, hour, dom, month, dow = by_task["reindex"].split()
    assert minute.isdigit() and hour.isdigit() and dom.isdigit() and month == "*" and dow == "*"
    # the restore drill ticks every 10 minutes through a night window on one day a month: each tick
    # advances the clone-check-delete drill one step
    minute, hour, dom, month, dow = by_task["restore_drill"].split()
    assert minute == "*/10" and dom.isdigit() and month == "*" and dow == "*"


# --------------------------------------------------------------------------------------- storage
def test_no_bucket_is_public() -> None:
    buckets = _resources("google_storage_bucket")
    assert {"this", "access_logs"} <= set(buckets)
    for name, bucket in buckets.items():
        assert bucket["uniform_bucket_level_access"] is True, f"{name}: uniform bucket-level access"
        assert bucket["public_access_prevention"] == "enforced", f"{name}: public access prevention"
        assert "encryption" in bucket, f"{name}: CMEK"
    assert set(_local("buckets")) >= {"kyc-documents", "exports", "function-sources"}
    for rtype in ("google_storage_bucket_iam_member", "google_storage_bucket_iam_binding"):
        for name, grant in _resources(rtype).items():
            members = [*grant.get("members", []), grant.get("member", "")]
            assert not PUBLIC_MEMBERS & set(members), f"{rtype}.{name} makes a bucket public"
    assert not _resources("google_storage_bucket_acl") and not _resources("google_storage_default_object_acl")
    assert not _resources("google_storage_bucket_iam_policy"), "bucket IAM is granted member by member"


def test_kyc_bucket_retains_documents_and_exports_expire() -> None:
    buckets = _local("buckets")
    kyc = buckets["kyc-documents"]
    assert kyc["versioning"] is True, "KYC documents are versioned"
    assert kyc["delete_after_days"] == "${var.kyc_retention_days}", "KYC documents are kept for the retention period, then deleted"
    assert kyc["retention_days"] is None, "no Bucket Lock: an erasure request must be able to delete documents"
    assert kyc["noncurrent_days"] == 30, "deleted documents stay recoverable for 30 days, then are gone"
    assert buckets["kyc-documents"]["cors"] is True
    assert buckets["exports"]["delete_after_days"] == "${var.export_retention_days}"
    text = (INFRA / "variables.tf").read_text(encoding="utf-8")
    assert re.search(r"var\.kyc_retention_days >= 1826", text), "KYC retention must be at least 5 years"


# ---------------------------------------------------------------------------------- formatting
def test_terraform_fmt_is_clean() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not on PATH; `terraform fmt -check` cannot run (CI installs it)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "infra"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, f"terraform fmt would change: {result.stdout or result.stderr}"


# ------------------------------------------------------------------------------- the staff console
def test_console_is_a_private_bucket_behind_cloud_cdn_over_https() -> None:
    assert "console" in _local("buckets"), "the console's files live in a bucket of storage.tf (private, CMEK, logged)"
    backend = _resource("google_compute_backend_bucket", "console")
    assert backend["bucket_name"] == '${google_storage_bucket.this["console"].name}' and backend["enable_cdn"] is True
    assert _block(backend, "cdn_policy")["cache_mode"] == "USE_ORIGIN_HEADERS", "objects' Cache-Control decides (hashed assets vs index.html)"
    assert _resource("google_compute_url_map", "console")["default_service"] == "${google_compute_backend_bucket.console.id}"
    proxy = _resource("google_compute_target_https_proxy", "console")
    assert proxy["ssl_policy"] == "${google_compute_ssl_policy.console.id}"
    assert _resource("google_compute_ssl_policy", "console")["min_tls_version"] == "TLS_1_2"
    rule = _resource("google_compute_global_forwarding_rule", "console")
    assert rule["port_range"] == "443" and rule["target"] == "${google_compute_target_https_proxy.console.id}"
    http = _resource("google_compute_url_map", "console_http_redirect")
    assert _block(http, "default_url_redirect")["https_redirect"] is True, "plain HTTP only redirects"
    # the bucket is read by Cloud CDN's fill service agent, nobody else (and never allUsers)
    fill = _resource("google_storage_bucket_iam_member", "console_cdn_fill")
    assert fill["role"] == "roles/storage.objectViewer" and "@cloud-cdn-fill.iam.gserviceaccount.com" in fill["member"]
    config = _resource("google_storage_bucket_object", "console_config")
    assert config["name"] == "config.json" and config["cache_control"] == "no-cache"


def test_console_answers_with_a_strict_content_security_policy() -> None:
    headers = _resource("google_compute_backend_bucket", "console")["custom_response_headers"]
    assert any(h.startswith("Content-Security-Policy: ${local.console_csp}") for h in headers)
    assert {"X-Content-Type-Options: nosniff", "X-Frame-Options: DENY", "Referrer-Policy: no-referrer"} <= set(headers)
    csp = (INFRA / "console.tf").read_text(encoding="utf-8")
    block = re.search(r"console_csp = join\(\"; \", \[(.*?)\]\)", csp, re.S)
    assert block, "local.console_csp is a join of one string per directive"
    directives = {d.split()[0]: d.split()[1:] for d in re.findall(r'^\s*"([^"]+)",?$', block.group(1), re.M)}
    assert directives["default-src"] == ["'none'"] and directives["script-src"] == ["'self'"], directives
    assert directives["frame-ancestors"] == ["'none'"] and directives["base-uri"] == ["'none'"]
    text = " ".join(" ".join(v) for v in directives.values())
    assert "unsafe-inline" not in text and "unsafe-eval" not in text and "*" not in text.replace("*.", "")


def test_only_the_admin_and_auth_functions_answer_the_console_origin() -> None:
    env = str(_local("function_env"))
    assert re.search(r'contains\(\["admin", "auth"\], k\) \? \{\s*CONSOLE_ORIGINS = local.console_origin', env), env
    assert _local("console_origin") == "https://${var.console_domain}"
    for env_name in ENVS:
        domain = _tfvars(env_name)["console_domain"]
        assert re.fullmatch(r"[a-z0-9.-]+", domain), (env_name, domain)
