"""Bringing a database up to date: create it (embedded only), migrate it, let the app role in."""

from __future__ import annotations

from shared.config import Settings
from shared.db import APP_ROLE, Conn, Database, Query, connect_url, with_database
from shared.logs import get_logger
from shared.migrate import migrate

log = get_logger(__name__)

DATABASE_EXISTS = Query("database_exists", "SELECT 1 FROM pg_database WHERE datname = :name", prepared=False)


def create_database_if_missing(server_url: str, name: str) -> None:
    """CREATE DATABASE ``name`` on the server behind ``server_url`` unless it exists."""
    raw = connect_url(with_database(server_url, "postgres"))
    raw.autocommit = True
    try:
        conn = Conn(raw, _quiet_settings())
        if conn.value(DATABASE_EXISTS, name=name) is None:
            raw.execute_simple(f'CREATE DATABASE "{name}"')
            log.info("created database %s", name, extra={"event": "database_created"})
    finally:
        raw.close()


def _quiet_settings() -> Settings:
    from shared.config import get_settings

    return get_settings()


def prepare(settings: Settings) -> list[int]:
    """Applies pending migrations (creating the embedded database first); returns what was applied."""
    if settings.uses_embedded_database and not settings.is_production:
        from shared.embedded import embedded_url

        create_database_if_missing(embedded_url(settings), settings.db_name)
    admin = Database(settings, admin=True)
    try:
        with admin.connection() as conn:
            applied = migrate(conn)
            if settings.uses_embedded_database and not settings.is_production:
                # Locally the application role logs in over the trusted unix socket; in Cloud SQL
                # the functions' IAM users are granted membership of it instead (docs/deploy.md).
                conn.script(f"ALTER ROLE {APP_ROLE} LOGIN")
    finally:
        admin.dispose()
    return applied
