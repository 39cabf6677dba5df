"""The production sizes come from the capacity model (bench/capacity.py): the tfvars may not drift from it."""

from __future__ import annotations

import re
from pathlib import Path

from bench import capacity

ROOT = Path(__file__).resolve().parents[2]


def _production() -> capacity.Sizes:
    return capacity.size(capacity.SCENARIOS[0], capacity.load_costs(), capacity.functions_tf_defaults())


def test_production_tfvars_are_what_the_model_computes() -> None:
    expected = capacity.render_tfvars(_production())
    assert capacity.model_block() == expected, (
        "infra/env/production.tfvars drifted from the capacity model: run `python -m bench.capacity --write` "
        "(or change bench/costs.json / bench/capacity.py and explain why in docs/capacity.md)"
    )


def test_the_model_carries_200k_concurrent_watchers_within_its_own_limits() -> None:
    sizes, costs = _production(), capacity.load_costs()["routes"]
    assert sizes.scenario.concurrent == 200_000 and sizes.scenario.watch_share == 1.0
    heartbeats_per_s = 200_000 / capacity.HEARTBEAT_EVERY_S
    progress = sizes.functions["progress"]
    assert progress.rps >= heartbeats_per_s
    # max_instances x 1 vCPU at the target utilisation covers the heartbeats' server CPU ...
    assert progress.max_instances * capacity.CPU_TARGET * 1000 >= heartbeats_per_s * costs["heartbeat"]["server_cpu_ms"]
    # ... and the primary's vCPUs at the target cover every primary read and write.
    primary_ms = sum(
        200_000 * per_min / 60 * costs[r]["db_cpu_ms"] for r, per_min in capacity.MIX.items() if capacity.ROUTES[r][1] == "primary"
    )
    assert sizes.fits_one_primary and sizes.primary_vcpu * capacity.CPU_TARGET * 1000 >= primary_ms
    # every pool at max_instances, plus the reserve, within 80 % of max_connections
    assert sizes.connection_budget <= 0.8 * sizes.max_connections


def test_drift_is_detected(tmp_path: Path) -> None:
    copy = tmp_path / "production.tfvars"
    text = capacity.TFVARS.read_text()
    copy.write_text(re.sub(r"max_connections(\s+)= \d+", r"max_connections\1= 9999", text, count=1))
    assert capacity.model_block(copy) != capacity.render_tfvars(_production())


def test_the_dashboard_and_alerts_use_metrics_the_code_exports() -> None:
    source = (ROOT / "shared" / "metrics.py").read_text()
    exported = set(re.findall(r'create_(?:observable_gauge|histogram|counter)\(\s*"([a-z_.]+)"', source))
    assert len(exported) >= 9
    monitoring = (ROOT / "infra" / "monitoring.tf").read_text()
    used = set(re.findall(r"(earnpay\.[a-z_.]+[a-z])", monitoring))
    assert used, "monitoring.tf uses none of the OpenTelemetry metrics"
    assert used <= exported, f"monitoring.tf names metrics nobody exports: {sorted(used - exported)}"
    assert {"earnpay.db.pool.utilisation", "earnpay.db.query.duration", "earnpay.sessions.active"} <= used
