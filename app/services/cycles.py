"""The background cycles of a worker process (run mirroring, reconcile): each is tried every few
seconds in every process, and runs where its lease is free (see app/adapters/db/run_store.py), so
one process at a time does the work, once per interval, and another takes over when it stops."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)

# How often a process looks whether a cycle is due, at most.
_POLL_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Cycle:
    name: str
    interval_seconds: float
    run: Callable[[float], Awaitable[Any]]  # given the interval; None when another process holds it


class BackgroundCycles:
    def __init__(self, cycles: list[Cycle]) -> None:
        self._cycles = cycles
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(c), name=f"cycle-{c.name}") for c in self._cycles]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _loop(self, cycle: Cycle) -> None:
        failures = 0
        while True:
            try:
                report = await cycle.run(cycle.interval_seconds)
                if report is not None:
                    log.info("background cycle done", cycle=cycle.name, report=str(report))
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # Adobe or the database may be down: the next cycle tries again
                if failures == 0:
                    log.exception("background cycle failed; trying again next time", cycle=cycle.name)
                failures += 1
            await asyncio.sleep(min(cycle.interval_seconds, _POLL_SECONDS))
