"""Engine construction and DSN normalisation (psycopg 3 for both the app and Alembic)."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def sync_url(url: str) -> str:
    """Any ``postgres://`` / ``postgresql://`` DSN → SQLAlchemy's psycopg 3 form."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    if parsed.get_backend_name() != "postgresql":
        raise ValueError("only PostgreSQL is supported")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The DSN as libpq (and psycopg.connect) understands it."""
    return make_url(sync_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


def create_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    return create_async_engine(
        sync_url(url),
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )
