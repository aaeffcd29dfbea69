"""A pool of psycopg connections in autocommit, for the hot paths that run one SQL statement per
round trip (saga_store.py, intake.py): each statement is its own transaction, with no SQLAlchemy
in between (see saga_store.py for why).

Dead connections. PostgreSQL ends sessions on its own: pg_terminate_backend, a restart or a
failover, idle_session_timeout. An idle connection of the pool then holds the server's FATAL (or
just its end of file), and psycopg_pool would hand it out as it is. Two guards, with no round trip
added to a statement:

- Handing a connection out, look whether its socket is readable (``poll`` with timeout 0). These
  connections never LISTEN, so an idle one has nothing to read: anything readable is a FATAL or
  the end of the session. Such a connection is closed and given back (the pool connects a
  replacement), and the next one is looked at.
- The race left (the session ends between that look and the statement, or during it): the
  statement is run once more, on another connection, only when it certainly did not commit: the
  error carries one of the SQLSTATEs of ``_SESSION_ENDED_BEFORE_COMMIT``. PostgreSQL sends those
  when it ends a session that is idle, or at an interrupt check inside a statement, whose
  transaction it then rolls back; an autocommit statement commits only when the server processes
  the Sync that ends it, and ReadyForQuery follows with no interrupt check in between. Any other
  failure is raised as it is, a bare end of file ("server closed the connection unexpectedly",
  no SQLSTATE) in particular: that one may come after the commit (an immediate shutdown, a
  crash), and the statements are not all idempotent.

Outages. Getting a connection fails after ``timeout`` seconds (psycopg_pool's default is 30 s: a
request would hang that long while the database is down). psycopg_pool retries a failed connect
for ``reconnect_timeout`` (5 minutes by default) with a delay doubling from 1 s, so it may connect
again only long after the database came back (up to about as long as it was down). Here it gives
up after ``_RECONNECT_WINDOW_SECONDS`` and, if clients wait for a connection, starts again at
once: an attempt about every second while the database is down and the gateway needs it.
"""

from __future__ import annotations

import select
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import psycopg
import structlog
from psycopg import AsyncConnection, AsyncCursor
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from .engine import libpq_url

log = structlog.get_logger(__name__)

T = TypeVar("T")

# How long a statement waits for a connection, at most: a clear PoolTimeout soon after the
# database stopped answering, and far above any wait for a busy connection.
_CONNECTION_TIMEOUT_SECONDS = 5.0
# Connect attempts are about 1 s apart within this window (psycopg_pool's first retry delay).
_RECONNECT_WINDOW_SECONDS = 2.0
# admin_shutdown (pg_terminate_backend, a fast shutdown), crash_shutdown, cannot_connect_now,
# idle_session_timeout: see the module docstring.
_SESSION_ENDED_BEFORE_COMMIT = frozenset({"57P01", "57P02", "57P03", "57P05"})


class StatementPool:
    def __init__(
        self,
        database_url: str,
        *,
        size: int,
        name: str = "statements",
        timeout: float = _CONNECTION_TIMEOUT_SECONDS,
    ) -> None:
        self._size = size
        self._pool = AsyncConnectionPool(
            libpq_url(database_url),
            min_size=1,
            max_size=size,
            # The statements are a fixed set: prepare each on first use, and plan it once (a
            # custom plan per execution cost more than executing these single-row statements).
            kwargs={"autocommit": True, "prepare_threshold": 0},
            configure=_configure,
            timeout=timeout,
            reconnect_timeout=_RECONNECT_WINDOW_SECONDS,
            reconnect_failed=_reconnect_while_clients_wait,
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
        async def run(conn: AsyncConnection[Any]) -> dict[str, Any] | None:
            cursor = await conn.cursor(row_factory=dict_row).execute(sql, params)
            return await cursor.fetchone()

        return await self._run(run)

    async def fetchall(self, sql: str, params: Mapping[str, Any]) -> list[tuple[Any, ...]]:
        async def run(conn: AsyncConnection[Any]) -> list[tuple[Any, ...]]:
            return await (await _execute(conn, sql, params)).fetchall()

        return await self._run(run)

    async def fetchall_rows(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Every row, each as a dict of its columns."""

        async def run(conn: AsyncConnection[Any]) -> list[dict[str, Any]]:
            cursor = await conn.cursor(row_factory=dict_row).execute(sql, params)
            return await cursor.fetchall()

        return await self._run(run)

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        """Runs the statement; returns the number of rows it affected."""

        async def run(conn: AsyncConnection[Any]) -> int:
            return int((await _execute(conn, sql, params)).rowcount)

        return await self._run(run)

    async def transaction(self, work: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        """``work``'s statements in one transaction on one connection (committed when it returns,
        rolled back when it raises). Like a single statement, run once more on another connection
        when the session ended before the commit: ``work`` must do nothing but those statements."""

        async def run(conn: AsyncConnection[Any]) -> T:
            async with conn.transaction():
                return await work(conn)

        return await self._run(run)

    async def _run(self, statement: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        await self._open()
        try:
            return await self._run_once(statement)
        except psycopg.OperationalError as exc:
            if exc.sqlstate not in _SESSION_ENDED_BEFORE_COMMIT:
                raise
            log.info("database session ended before the statement committed; running it again", sqlstate=exc.sqlstate)
        return await self._run_once(statement)

    async def _run_once(self, statement: Callable[[AsyncConnection[Any]], Awaitable[T]]) -> T:
        conn = await self._live_connection()
        try:
            # No ``async with conn``: in autocommit its commit at exit has nothing to do, and a
            # connection given back in a bad state is discarded by the pool anyway.
            return await statement(conn)
        finally:
            await self._pool.putconn(conn)

    async def _live_connection(self) -> AsyncConnection[Any]:
        # After a blip every idle connection may be dead: skip each (the pool replaces it) until a
        # live one or a new one. More than ``size`` dead ones in a row would mean the server ends
        # new sessions too: the statement then fails on the next (or runs again, above).
        for _ in range(self._size):
            conn = await self._pool.getconn()
            if _looks_alive(conn):
                return conn
            try:
                await conn.close()
            finally:
                await self._pool.putconn(conn)  # closed: the pool drops it and connects another
        return await self._pool.getconn()


def _looks_alive(conn: AsyncConnection[Any]) -> bool:
    """No round trip: nothing to read on an idle connection (see the module docstring)."""
    if conn.closed:
        return False
    # poll, not select: select fails on a descriptor above FD_SETSIZE (1024), which a busy
    # process reaches. POLLHUP and POLLERR are reported whatever the mask.
    poller = select.poll()
    poller.register(conn.pgconn.socket, select.POLLIN)
    return not poller.poll(0)


async def _reconnect_while_clients_wait(pool: AsyncConnectionPool[Any]) -> None:
    # psycopg_pool calls this when a connection attempt gives up (after reconnect_timeout), and
    # would not try again before the next client arrives. Clients waiting now would wait in vain
    # for their timeout: check() starts a new attempt (it grows a pool that has room; the idle
    # connections it also checks, with a round trip each, are few or none during an outage).
    if not pool.closed and pool.get_stats().get("requests_waiting", 0):
        await pool.check()


async def _configure(conn: AsyncConnection[Any]) -> None:
    await conn.execute("SET plan_cache_mode = force_generic_plan")


async def _execute(conn: AsyncConnection[Any], sql: str, params: Mapping[str, Any]) -> AsyncCursor[Any]:
    # Callers pass SQL built from their own constants (and checked column names) only.
    return await conn.execute(sql, params)
