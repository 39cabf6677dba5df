"""Terraform for offerwall secrets in Secret Manager (infra/partners.tf): who may touch them, and only them."""

from __future__ import annotations

from shared.config import Settings
from tests.infra.test_terraform_policy import _config, _local, _resource

PREFIX: str = Settings.model_fields["partner_secret_prefix"].default


def _condition(grant: dict[str, object]) -> str:
    block = grant["condition"]
    block = block[0] if isinstance(block, list) else block
    assert isinstance(block, dict)
    return str(block["expression"])


def test_the_prefix_and_store_are_the_ones_the_code_uses() -> None:
    assert _local("partner_secret_prefix") == PREFIX
    env = _local("partner_secret_env")
    assert env["SECRET_STORE"] == "secret_manager" and env["PARTNER_SECRET_PREFIX"] == "${local.partner_secret_prefix}"
    # set on exactly the functions that use the secrets
    assert 'contains(["admin", "partner_callbacks", "run_maintenance"], k) ? local.partner_secret_env : {}' in str(_local("function_env"))


def test_each_function_gets_one_grant_and_every_grant_is_narrowed_to_the_prefix() -> None:
    grants = _local("partner_secret_grants")
    expected = {"writer": "admin", "reader": "partner_callbacks", "disabler": "run_maintenance"}
    assert {name: g["fn"] for name, g in grants.items()} == expected
    member = _resource("google_project_iam_member", "partner_secrets")
    assert member["for_each"] == "${local.partner_secret_grants}"
    assert member["member"] == "serviceAccount:${google_service_account.fn[each.value.fn].email}" and member["role"] == "${each.value.role}"
    assert "partner_secret_condition" in _condition(member)


def test_admin_may_only_create_offerwall_secrets_and_add_versions() -> None:
    role = _resource("google_project_iam_custom_role", "partner_secret_writer")
    assert sorted(role["permissions"]) == ["secretmanager.secrets.create", "secretmanager.versions.add"]
    assert _local("partner_secret_grants")["writer"]["role"] == "${google_project_iam_custom_role.partner_secret_writer.id}"


def test_maintenance_may_only_disable_offerwall_secret_versions() -> None:
    role = _resource("google_project_iam_custom_role", "partner_secret_disabler")
    assert role["permissions"] == ["secretmanager.versions.disable"]
    assert _local("partner_secret_grants")["disabler"]["role"] == "${google_project_iam_custom_role.partner_secret_disabler.id}"


def test_partner_callbacks_may_only_read_offerwall_secrets() -> None:
    assert _local("partner_secret_grants")["reader"]["role"] == "roles/secretmanager.secretAccessor"
    expression = _local("partner_secret_condition")["expression"]
    assert expression.startswith("resource.name.startsWith(") and "/secrets/${local.partner_secret_prefix}" in expression
    assert "data.google_project.this.number" in expression  # IAM conditions see secrets by project number
    # no longer under the payout-details KEK, and no unconditioned Secret Manager role anywhere
    assert _local("functions")["partner_callbacks"]["kms"] is None
    for name, member in _config()["resource"].get("google_project_iam_member", {}).items():
        if "secretmanager" in str(member.get("role", "")) or "partner_secret" in str(member.get("role", "")):
            assert "condition" in member, name
