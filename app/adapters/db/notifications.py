"""Wake-ups for requests holding a ``Prefer: wait``: the worker NOTIFYs when an activation becomes
terminal (repository.TERMINAL_CHANNEL), and one LISTEN connection per process passes it on.

Polling the status every 100 ms added up to 100 ms (50 on average) to every waited answer, and a
query per waiting request per tick; a notification answers within a millisecond or two. A slow
poll stays behind it as a safety net (a notification sent while the listener reconnects is lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Iterator

import psycopg
import structlog

from .engine import libpq_url
from .saga_store import TERMINAL_CHANNEL

log = structlog.get_logger(__name__)

_RECONNECT_DELAY_SECONDS = 1.0


class TerminalWatcher:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None

    @contextlib.contextmanager
    def watch(self, activation_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set when ``activation_id`` may have become terminal. Register before reading the
        status, then clear-read-wait: a notification between the read and the wait is not lost."""
        if self._task is None:  # lazily: a worker-only process never waits on anything
            self._task = asyncio.create_task(self._listen(), name="terminal-watcher")
        event = asyncio.Event()
        self._waiters.setdefault(activation_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(activation_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[activation_id]

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def _listen(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(self._database_url), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {TERMINAL_CHANNEL}")
                    # Anything may have finished while we were not listening: let every waiter look.
                    self._wake_all()
                    async for notify in conn.notifies():
                        try:
                            activation_id = uuid.UUID(notify.payload)
                        except ValueError:
                            continue
                        for event in self._waiters.get(activation_id, ()):
                            event.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the poll behind the wait covers the gap
                log.debug("terminal listener lost", error=type(exc).__name__)
                await asyncio.sleep(_RECONNECT_DELAY_SECONDS)
