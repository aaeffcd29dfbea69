"""Alembic owns the schema: upgrade on an empty database, downgrade to base, upgrade again; and the
table definitions the code uses match what the migrations build."""

from __future__ import annotations

import psycopg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, pool

from app.adapters.db import migrate
from app.adapters.db.engine import sync_url
from app.adapters.db.tables import metadata
from tests.support.database import fresh_database

TABLES = {
    "activations",
    "activation_steps",
    "activation_events",
    "idempotency_keys",
    "activation_operations",
    "operation_steps",
    "operation_keys",
    "activation_runs",
    "cycle_watermarks",
    "background_leases",
    "webhook_subscriptions",
}


def table_names(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").fetchall()
    return {r[0] for r in rows} - {"alembic_version"}


def test_upgrade_downgrade_upgrade(pg_server: str) -> None:
    with fresh_database(pg_server, prefix="ag_mig") as url:
        assert table_names(url) == set()
        migrate.upgrade(url)
        assert table_names(url) == TABLES
        migrate.downgrade(url, "base")
        assert table_names(url) == set()
        migrate.upgrade(url)
        assert table_names(url) == TABLES
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchone() == (migrate.head_revision(),)


def test_code_tables_match_migrations(database_url: str) -> None:
    engine = create_engine(sync_url(database_url), poolclass=pool.NullPool)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    engine.dispose()
    assert diff == []


def test_upgrade_is_safe_to_run_twice_concurrently(pg_server: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with fresh_database(pg_server, prefix="ag_mig") as url:
        with ThreadPoolExecutor(max_workers=3) as pool_:
            list(pool_.map(lambda _: migrate.upgrade(url), range(3)))
        assert table_names(url) == TABLES
