"""One LISTEN connection per process, for both of the gateway's channels:

- ``activation_ready`` (intake.NOTIFY_CHANNEL): new or newly runnable work; it wakes the worker's
  claim loop (the domain's WorkSignal port), with a short poll behind it as the safety net.
- ``activation_terminal`` (saga_store.TERMINAL_CHANNEL): an activation became terminal; it answers
  the requests holding a ``Prefer: wait`` within a millisecond or two, where polling every 100 ms
  added 50 ms on average. A slow poll stays behind it too.

A notification sent while the connection is down is lost: on every (re)connection everyone is told
to look, as if each had been notified.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable, Iterator

import psycopg
import structlog

from .engine import libpq_url
from .intake import NOTIFY_CHANNEL
from .saga_store import TERMINAL_CHANNEL

log = structlog.get_logger(__name__)

# While the database is unreachable the connection is retried this often (doubling from the first
# to the most): notifications resume within about a second of it answering.
_RETRY_FIRST_SECONDS = 0.5
_RETRY_MAX_SECONDS = 1.0


class Notifications:
    def __init__(self, database_url: str) -> None:
        self._database_url = database_url
        self._waiters: dict[uuid.UUID, set[asyncio.Event]] = {}
        self._work_listeners: list[Callable[[], None]] = []
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ the worker (WorkSignal)
    async def listen(self, on_signal: Callable[[], None]) -> None:
        """Call ``on_signal`` for every ready notification (and once per reconnection) until cancelled."""
        self._work_listeners.append(on_signal)
        self._start()
        on_signal()
        try:
            await asyncio.Event().wait()
        finally:
            self._work_listeners.remove(on_signal)

    # ------------------------------------------------------------------ Prefer: wait
    @contextlib.contextmanager
    def watch(self, activation_id: uuid.UUID) -> Iterator[asyncio.Event]:
        """An event set when ``activation_id`` may have become terminal. Register before reading the
        status, then clear-read-wait: a notification between the read and the wait is not lost."""
        self._start()
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

    # ------------------------------------------------------------------ the connection
    def _start(self) -> None:
        if self._task is None:  # lazily: only what a process uses opens the connection
            self._task = asyncio.create_task(self._listen(), name="notifications")

    def _wake_everyone(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()
        for on_signal in list(self._work_listeners):
            on_signal()

    def _deliver(self, channel: str, payload: str) -> None:
        if channel == NOTIFY_CHANNEL:
            for on_signal in list(self._work_listeners):
                on_signal()
            return
        try:
            activation_id = uuid.UUID(payload)
        except ValueError:
            return
        for event in self._waiters.get(activation_id, ()):
            event.set()

    async def _listen(self) -> None:
        delay = _RETRY_FIRST_SECONDS
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    libpq_url(self._database_url), autocommit=True
                ) as conn:
                    await conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    await conn.execute(f"LISTEN {TERMINAL_CHANNEL}")
                    delay = _RETRY_FIRST_SECONDS
                    self._wake_everyone()
                    async for notify in conn.notifies():
                        self._deliver(notify.channel, notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the polls behind the notifications cover the gap
                log.debug("notification connection lost", error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_SECONDS)
