"""Alembic, driven from code: upgrade under an advisory lock so several processes may start at once."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import Connection

import migrations

from .engine import sync_url

# Any constant works; it only has to be the same for every process of this service.
_MIGRATION_LOCK_ID = 0x4147_4D49

# What Alembic says, at INFO, each time it sets up a migration context: also on every readiness probe
# (current_revision), which must log at DEBUG only. "Running upgrade ..." lines keep their INFO.
_SETUP_MESSAGES = frozenset({"Context impl %s.", "Will assume %s DDL."})


class _SetupLinesAtDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg not in _SETUP_MESSAGES:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        # The logger let the line through at INFO; at DEBUG it is kept only if DEBUG is enabled.
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)


_ALEMBIC_MIGRATION_LOG = logging.getLogger("alembic.runtime.migration")
_ALEMBIC_MIGRATION_LOG.addFilter(_SetupLinesAtDebug())


def alembic_config(url: str | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(Path(migrations.__file__).parent))
    if url:
        config.set_main_option("sqlalchemy.url", sync_url(url).replace("%", "%%"))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(url: str, revision: str = "head") -> None:
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:id)"), {"id": _MIGRATION_LOCK_ID})
            conn.commit()
            try:
                config = alembic_config(url)
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
                conn.commit()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": _MIGRATION_LOCK_ID})
                conn.commit()
    finally:
        engine.dispose()


def downgrade(url: str, revision: str = "base") -> None:
    engine = create_engine(sync_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            config = alembic_config(url)
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
            conn.commit()
    finally:
        engine.dispose()
