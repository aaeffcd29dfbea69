"""Adobe's dataflow limit per sandbox (contract §10's guardrail): about 100 destination dataflows
per sandbox, so a create past it is refused before anything is written, and callers learn to change
an activation in place instead of burning a dataflow per campaign."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from app.domain.ports import FlowService

from .problems import ServiceProblem

log = structlog.get_logger(__name__)

# Adobe's filter for the destination flows of a sandbox (flow-service.md §2.3), counted with
# `count=true`: one small answer however many flows the sandbox holds, where listing them would read
# every flow's whole document at each refresh.
DESTINATION_FLOWS = {"property": "inheritedAttributes.properties.isDestinationFlow==true"}
# How long a create waits for a sandbox's dataflow count before it goes ahead unchecked.
_COUNT_WAIT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class _Count:
    # The sandbox's destination flows upstream and its creates without a flow, when read; None when
    # the read failed: the limit is not enforced until the next one.
    counted: int | None
    accepted_mark: int  # how many creates this process had accepted in the sandbox when the read began
    read_at: float  # time.monotonic() when the read began


class DataflowLimit:
    """Adobe's limit of destination dataflows per sandbox, as a guardrail on creates: one past it is
    refused (409 dataflow-limit-reached), so that callers learn to change an activation in place
    rather than burn a dataflow per campaign. ``limit`` 0 turns it off.

    A sandbox's count is read at most once per ``ttl`` seconds, in the background once there is one
    (a create never waits on Adobe for a count it already has, only for the first): its creates
    without a flow from the database first, then its destination flows upstream, so that a create
    that gets its flow in between is counted twice, never missed. The creates this process accepts
    are added to the count read before them, so that a burst cannot overshoot it; those of other
    processes count from the next read. A count that cannot be read (Adobe unavailable, or no
    answer within ``wait`` seconds) blocks nothing until the next read."""

    def __init__(
        self,
        flows: FlowService,
        creates_without_flow: Callable[[str], Awaitable[int]],
        *,
        limit: int,
        ttl: float,
        wait: float = _COUNT_WAIT_SECONDS,
    ) -> None:
        self._flows = flows
        self._creates_without_flow = creates_without_flow
        self._limit = limit
        self._ttl = ttl
        self._wait = wait
        self._counts: dict[str, _Count] = {}
        self._reads: dict[str, asyncio.Task[_Count]] = {}
        self._accepted: Counter[str] = Counter()

    async def refusal(self, sandbox: str) -> ServiceProblem | None:
        """The problem of a create in ``sandbox`` at the limit; None below it, when the limit is off,
        or when the count cannot be read."""
        if self._limit <= 0:
            return None
        count = await self._current(sandbox)
        if count is None or count < self._limit:
            return None
        return ServiceProblem(
            409,
            "dataflow-limit-reached",
            "Dataflow limit reached",
            f"sandbox {sandbox} has {count} destination dataflows (creates under way included), Adobe's limit"
            f" is {self._limit}: change an existing activation in place (PATCH /activations/{{id}}) instead"
            " of creating another, or retire one (DELETE /activations/{id})",
        )

    async def reserve(self, sandbox: str) -> ServiceProblem | None:
        """Hold a place for a create in ``sandbox`` (``release`` it when nothing was created), or the
        refusal. Nothing is awaited between the count and the hold: concurrent creates of this
        process cannot both take the last place."""
        refused = await self.refusal(sandbox)
        if refused is None:
            self._accepted[sandbox] += 1
        return refused

    def release(self, sandbox: str) -> None:
        self._accepted[sandbox] -= 1

    async def _current(self, sandbox: str) -> int | None:
        count = self._counts.get(sandbox)
        if count is None or time.monotonic() - count.read_at >= self._ttl:
            reading = self._read(sandbox)
            if count is None:  # the sandbox's first count: worth a short wait
                try:
                    count = await asyncio.wait_for(asyncio.shield(reading), self._wait)
                except TimeoutError:
                    log.warning("dataflow count not read in time: limit not enforced", sandbox=sandbox)
                    return None
        if count.counted is None:
            return None
        return count.counted + self._accepted[sandbox] - count.accepted_mark

    def _read(self, sandbox: str) -> asyncio.Task[_Count]:
        """The sandbox's read under way, or a new one: one at a time, for any number of creates."""
        task = self._reads.get(sandbox)
        if task is None or task.done():
            task = asyncio.create_task(self._count(sandbox), name=f"dataflow-count-{sandbox}")
            self._reads[sandbox] = task
        return task

    async def _count(self, sandbox: str) -> _Count:
        mark, started = self._accepted[sandbox], time.monotonic()
        try:
            creates = await self._creates_without_flow(sandbox)
            flows = await self._flows.count("flows", sandbox=sandbox, params=DESTINATION_FLOWS)
            count = _Count(creates + flows, mark, started)
        except Exception as exc:  # any failure to count is the same to a create: go ahead unchecked
            log.warning("dataflow count unreadable: limit not enforced", sandbox=sandbox, reason=repr(exc))
            count = _Count(None, mark, started)
        self._counts[sandbox] = count
        return count
