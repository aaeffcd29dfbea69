"""Requests that a ``late_commit`` fault holds back and applies later, in the background, as Adobe's backend
carries on with a request after its gateway has given up on it.

Each pending commit is an asyncio task on the server's event loop, kept here because asyncio keeps only
weak references to tasks. Reset cancels them
all; removing fault rules does not, because the backend already has the request by then.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

JsonObject = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PendingCommit:
    seq: int  # of the history entry of the request it applies
    fault: str
    method: str
    path: str
    due: float  # wall-clock time (seconds since the epoch), as the history's entries have it
    task: asyncio.Task[None]

    def describe(self) -> JsonObject:
        return {
            "lateCommitOf": self.seq,
            "fault": self.fault,
            "method": self.method,
            "path": self.path,
            "due": self.due,
        }


class LateCommits:
    def __init__(self) -> None:
        # By a key of our own, not by seq: seqs start again at 0 after a reset, while a cancelled task
        # still has its ``finally`` to run.
        self._pending: dict[int, PendingCommit] = {}
        self._keys = itertools.count()
        # Totals since the last reset, for a soak that removes its rules (and their counters) all the time.
        self.scheduled = self.applied = self.cancelled = 0

    def schedule(
        self, *, seq: int, fault: str, method: str, path: str, delay: float, apply: Callable[[], Awaitable[None]]
    ) -> None:
        """Run ``apply`` ``delay`` seconds from now. Must be called on the event loop that serves requests."""

        key = next(self._keys)

        async def run() -> None:
            try:
                await asyncio.sleep(delay)
                await apply()
                self.applied += 1
            finally:
                self._pending.pop(key, None)

        task = asyncio.get_running_loop().create_task(run(), name=f"late-commit-{seq}")
        self._pending[key] = PendingCommit(seq, fault, method, path, time.time() + delay, task)
        self.scheduled += 1

    def describe(self) -> JsonObject:
        pending = sorted(self._pending.values(), key=lambda commit: commit.due)
        return {
            "items": [commit.describe() for commit in pending],
            "scheduled": self.scheduled,
            "applied": self.applied,
            "cancelled": self.cancelled,
        }

    def cancel_all(self) -> int:
        """Cancel every commit not yet applied; returns how many there were."""
        commits = list(self._pending.values())
        self._pending.clear()
        for commit in commits:
            commit.task.cancel()
        self.cancelled += len(commits)
        return len(commits)

    def reset(self) -> None:
        self.cancel_all()
        self.scheduled = self.applied = self.cancelled = 0
