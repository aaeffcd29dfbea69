"""A pool of psycopg connections in autocommit, for the hot paths that run one SQL statement per
round trip (saga_store.py, intake.py): each statement is its own transaction, with no SQLAlchemy
in between (see saga_store.py for why)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .engine import libpq_url


class StatementPool:
    def __init__(self, database_url: str, *, size: int, name: str = "statements") -> None:
        self._pool = AsyncConnectionPool(
            libpq_url(database_url),
            min_size=1,
            max_size=size,
            # The statements are a fixed set: prepare each on first use, and plan it once (a
            # custom plan per execution cost more than executing these single-row statements).
            kwargs={"autocommit": True, "prepare_threshold": 0},
            configure=_configure,
            open=False,
            name=name,
        )
        self._opened = False

    async def _open(self) -> None:
        # Lazily, inside the running loop; psycopg_pool connects in the background.
        if not self._opened:
            self._opened = True
            await self._pool.open(wait=False)

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self._pool.close()

    async def fetchone(self, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
        await self._open()
        async with self._pool.connection() as conn:
            cursor = await conn.cursor(row_factory=dict_row).execute(sql, params)
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        await self._open()
        async with self._pool.connection() as conn:
            return await (await _execute(conn, sql, params)).fetchall()

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        """Runs the statement; returns the number of rows it affected."""
        await self._open()
        async with self._pool.connection() as conn:
            return int((await _execute(conn, sql, params)).rowcount)


async def _configure(conn: AsyncConnection[Any]) -> None:
    await conn.execute("SET plan_cache_mode = force_generic_plan")


async def _execute(conn: AsyncConnection[Any], sql: str, params: Mapping[str, Any]) -> AsyncCursor[Any]:
    # Callers pass SQL built from their own constants (and checked column names) only.
    return await conn.execute(sql, params)
