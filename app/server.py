"""The HTTP server process: uvicorn with a drain phase before its graceful shutdown.

Plain uvicorn closes its listening socket the moment SIGTERM arrives, so a load balancer that still
routes to the pod sees connection errors until its next readiness probe. Here the first SIGTERM
(or SIGINT) only marks the process as draining: ``/health/ready`` answers 503 with the check
``process:draining`` while requests keep being served for ``SHUTDOWN_DELAY_SECONDS``; then uvicorn
shuts down as usual (stop accepting, finish open requests, run the lifespan shutdown, which stops
the saga worker: it claims nothing more and finishes or releases its steps). A second signal during
the delay skips the rest of it.

uvicorn re-raises the signals it caught as its last act, which on SIGTERM ends the process there and
then: nothing after ``run()`` would run (stopping the embedded PostgreSQL, say). This server keeps
them in ``caught_signals`` instead, for the caller to re-raise once it has cleaned up.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Generator
from types import FrameType

import structlog
import uvicorn

log = structlog.get_logger(__name__)


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, *, drain_seconds: float, on_drain: Callable[[], None]) -> None:
        super().__init__(config)
        self._drain_seconds = drain_seconds
        self._on_drain = on_drain
        self._drain_deadline: float | None = None
        self._drain_logged = False
        self.caught_signals: list[int] = []

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        with super().capture_signals():
            try:
                yield
            finally:
                # Emptied before uvicorn's block ends, so that it has nothing left to re-raise.
                self.caught_signals = list(self._captured_signals)
                self._captured_signals.clear()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs as a plain signal handler in the main thread: set flags only (logging here could
        # deadlock on a handler lock held by the interrupted code).
        if self._drain_deadline is not None or self._drain_seconds <= 0:
            super().handle_exit(sig, frame)
            return
        self._captured_signals.append(sig)  # uvicorn re-raises it after the graceful shutdown
        self._drain_deadline = time.monotonic() + self._drain_seconds
        self._on_drain()

    async def on_tick(self, counter: int) -> bool:
        if self._drain_deadline is not None and not self.should_exit:
            if not self._drain_logged:
                self._drain_logged = True
                log.info("draining: readiness fails, still serving", drain_seconds=self._drain_seconds)
            if time.monotonic() >= self._drain_deadline:
                log.info("drain period over; shutting down")
                self.should_exit = True
        return await super().on_tick(counter)

    @property
    def draining(self) -> bool:
        return self._drain_deadline is not None
