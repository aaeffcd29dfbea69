"""Fault and latency rules set through the admin API and applied by the middleware.

Rules match on method and on a glob (``fnmatch``) over the path relative to the Flow Service base path
(``/flows/*``) or over the absolute path (``/ims/token/v3``); ``*`` matches everything. Matching and
counting are synchronous so that "the next N calls" is exact under concurrency.

Modes: ``error`` answers the rule's status (and body) and leaves everything untouched; ``commit_then_fail``
applies the request, then fails its answer (``failure``: an error status, a ``timeout`` held ``holdMs`` then
500, or a ``drop`` of the connection mid-response); ``late_commit`` fails the answer in the same ways at
once but applies the request only ``commitAfterMs`` after it arrived (:mod:`.latecommits`).
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Literal

from .config import BASE_PATH

JsonObject = dict[str, Any]
FaultMode = Literal["error", "commit_then_fail", "late_commit"]
FailureKind = Literal["error", "timeout", "drop"]


def _path_matches(pattern: str, path: str) -> bool:
    if path.startswith(BASE_PATH) and fnmatchcase(path[len(BASE_PATH) :] or "/", pattern):
        return True
    return fnmatchcase(path, pattern)


def _method_matches(pattern: str, method: str) -> bool:
    return pattern == "*" or pattern.upper() == method.upper()


@dataclass
class FaultRule:
    id: str
    method: str
    path: str
    mode: FaultMode
    status: int
    failure: FailureKind = "error"
    body_contains: str | None = None
    retry_after: int | str | None = None  # a string is sent verbatim (hostile values included)
    hold_ms: int = 30000
    commit_after_ms: int = 5000  # late_commit: when the held-back request is applied, from its arrival
    times: int | None = None
    rate: float | None = None
    seed: int | None = None
    body: Any = None  # any JSON value but null; None: the emulator's own error body for the status
    remaining: int | None = None
    fired: int = 0
    committed: int = 0  # late_commit: held-back requests applied so far (whatever their outcome)
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        if self.times is None and self.rate is None:
            self.times = 1
        self.remaining = self.times
        self._rng = random.Random(self.seed)

    def matches(self, method: str, path: str, body: bytes) -> bool:
        if not (_method_matches(self.method, method) and _path_matches(self.path, path)):
            return False
        return self.body_contains is None or self.body_contains.encode() in body

    def take(self) -> bool:
        """Decide whether this matching call fails; consumes one draw of the seeded generator per call."""
        if self.remaining is not None and self.remaining <= 0:
            return False
        if self.rate is not None and self._rng.random() >= self.rate:
            return False
        if self.remaining is not None:
            self.remaining -= 1
        self.fired += 1
        return True

    def describe(self) -> JsonObject:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "bodyContains": self.body_contains,
            "mode": self.mode,
            "status": self.status,
            "retryAfter": self.retry_after,
            "failure": self.failure,
            "holdMs": self.hold_ms,
            "commitAfterMs": self.commit_after_ms,
            "times": self.times,
            "rate": self.rate,
            "seed": self.seed,
            "body": self.body,
            "remaining": self.remaining,
            "fired": self.fired,
            "committed": self.committed,
        }


@dataclass
class LatencyRule:
    id: str
    method: str
    path: str
    fixed_ms: int
    random_ms: int

    def describe(self) -> JsonObject:
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "fixedMs": self.fixed_ms,
            "randomMs": self.random_ms,
        }


class FaultPlan:
    """The active fault and latency rules, in the order they were added."""

    def __init__(self) -> None:
        self.faults: list[FaultRule] = []
        self.latency: list[LatencyRule] = []
        self._ids = itertools.count(1)
        self._jitter = random.Random()

    def next_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def fault_for(self, method: str, path: str, body: bytes) -> FaultRule | None:
        """The first matching rule that decides to fire for this call, if any."""
        for rule in self.faults:
            if rule.matches(method, path, body) and rule.take():
                return rule
        return None

    def delay_seconds(self, method: str, path: str) -> float:
        """Total delay of every matching latency rule (they add up)."""
        total_ms = 0.0
        for rule in self.latency:
            if _method_matches(rule.method, method) and _path_matches(rule.path, path):
                total_ms += rule.fixed_ms + (self._jitter.uniform(0, rule.random_ms) if rule.random_ms else 0)
        return total_ms / 1000

    def remove_fault(self, rule_id: str) -> bool:
        before = len(self.faults)
        self.faults = [rule for rule in self.faults if rule.id != rule_id]
        return len(self.faults) != before

    def remove_latency(self, rule_id: str) -> bool:
        before = len(self.latency)
        self.latency = [rule for rule in self.latency if rule.id != rule_id]
        return len(self.latency) != before

    def clear(self) -> None:
        self.faults.clear()
        self.latency.clear()
