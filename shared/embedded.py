"""The embedded PostgreSQL (pgserver) for local runs and tests: no server to install by hand."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from shared.config import Settings

_lock = threading.Lock()
_servers: dict[Path, Any] = {}


def start(pgdata: Path, *, cleanup_mode: str | None = "stop") -> Any:
    """Starts (or reuses) a private PostgreSQL whose data lives in ``pgdata``; returns the pgserver handle."""
    import pgserver

    pgdata = Path(pgdata).expanduser().resolve()
    with _lock:
        if pgdata not in _servers:
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            _servers[pgdata] = pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)
        return _servers[pgdata]


def stop(pgdata: Path) -> None:
    """Lets go of this process's handle on the server: stops it when this process was its last user
    (pgserver counts the processes that asked for it; another's server is left running)."""
    pgdata = Path(pgdata).expanduser().resolve()
    with _lock:
        server = _servers.pop(pgdata, None)
    if server is not None:
        server.cleanup()


def socket_url(pgdata: Path, database: str = "postgres", user: str = "postgres") -> str:
    """The URL of the embedded server's unix socket (pg8000 takes ``unix_sock=``)."""
    pgdata = Path(pgdata).expanduser().resolve()
    return f"postgresql://{user}@localhost/{database}?unix_sock={pgdata}/.s.PGSQL.5432"


def embedded_url(settings: Settings) -> str:
    """Starts the embedded server for these settings and returns its superuser URL (database ``postgres``)."""
    if settings.is_production:
        raise RuntimeError("production never falls back to the embedded database")
    start(settings.embedded_pgdata)
    return socket_url(settings.embedded_pgdata)
