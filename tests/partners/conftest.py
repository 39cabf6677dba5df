"""Fixtures of the partner tests: the Secret Manager stand-in (tests/fixtures/secret_manager.py)."""

from tests.fixtures.secret_manager import secret_manager, secret_manager_standin  # noqa: F401  (fixtures for this directory)
