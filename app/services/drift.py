"""The reconciler (contract §13): compares live activations' flows with their applied desired
state (domain/drift.py), records in `sync` how each differs, and under `driftPolicy: enforce`
queues the operation that restores it. `POST /activations/{id}/reconcile` checks one now.

A cycle reads, per sandbox, only the flows changed since the last cycle (`GET /flows?property=
updatedAt>…`, pages of 100): every edit moves a flow's `updatedAt`, so the calls grow with the edits,
not with the activations. A flow that was deleted is not in that list, so every
RECONCILE_FULL_SWEEP_SECONDS a full sweep reads every live activation's flow by id, 50 a call
(`property=id==a,b,…`), and finds what is gone.

Only activations whose desired state is applied and whose queue is empty are compared: anything on
its way converges the flow anyway. One process at a time runs a cycle (the "reconcile" lease).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from app.domain.drift import ENFORCE, flow_drift, repair_for
from app.domain.flow_update import desired_flow_of
from app.domain.ports import FlowService, UpstreamError
from app.domain.workflows import Workflows

from .problems import ServiceProblem
from .runs import DEFAULT_CYCLE_LEASE_SECONDS, IDS_PER_CALL, PAGE_LIMIT, chunks, cycle_lease

if TYPE_CHECKING:
    from app.adapters.db.drift_store import DriftStore, Reconcilable
    from app.adapters.db.run_store import BackgroundLease, RunStore

log = structlog.get_logger(__name__)

LEASE_NAME = "reconcile"
FLOWS = "flows"
# The watermarks (run_store): the flows changed after this are read; the last full sweep.
FLOWS_CHANGED = "flows-changed"
FULL_SWEEP = "reconcile-full-sweep"
OVERLAP_MS = 15 * 60 * 1000


def _ms(value: Any) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class DriftObserver(Protocol):
    def drift_found_in(self, count: int) -> None: ...

    def drift_repairs_queued(self, count: int) -> None: ...

    def cycle_finished(self, cycle: str, seconds: float) -> None: ...


@dataclass(frozen=True, slots=True)
class ReconcileReport:
    checked: int
    drifted: int
    repairs: int


class Reconciler:
    def __init__(
        self,
        store: DriftStore,
        leases: RunStore,
        flows: FlowService,
        workflows: Workflows,
        observer: DriftObserver,
        *,
        owner: str,
        full_sweep_seconds: float,
        lease_seconds: float = DEFAULT_CYCLE_LEASE_SECONDS,
    ) -> None:
        self._full_sweep_ms = full_sweep_seconds * 1000
        self._lease_seconds = lease_seconds
        self._store = store
        self._leases = leases
        self._flows = flows
        self._workflows = workflows
        self._observer = observer
        self._owner = owner

    def _lease_for(self, interval_seconds: float) -> float:
        return cycle_lease(interval_seconds, self._lease_seconds)

    async def cycle(self, *, interval_seconds: float) -> ReconcileReport | None:
        lease = await self._leases.take_lease(
            LEASE_NAME, owner=self._owner, seconds=cycle_lease(interval_seconds, self._lease_seconds)
        )
        if lease is None:
            return None
        started = time.monotonic()
        checked = drifted = repairs = 0
        try:
            for sandbox in await self._leases.live_sandboxes():
                report = await self._reconcile_sandbox(sandbox, lease)
                checked, drifted, repairs = checked + report.checked, drifted + report.drifted, repairs + report.repairs
        finally:
            elapsed = time.monotonic() - started
            await self._leases.schedule_next(lease, seconds=max(0.0, interval_seconds - elapsed))
        self._observer.cycle_finished("reconcile", elapsed)
        return ReconcileReport(checked, drifted, repairs)

    async def check(self, activation_id: uuid.UUID) -> ReconcileReport:
        """One activation now (nothing when its desired state is not applied yet)."""
        activation = await self._store.reconcilable_one(activation_id)
        if activation is None:
            return ReconcileReport(0, 0, 0)
        try:
            return await self._reconcile([activation], activation.sandbox, None)
        except UpstreamError:
            raise ServiceProblem(
                503, "upstream-unavailable", "Adobe unavailable", "the dataflow could not be read from Adobe"
            ) from None

    async def _reconcile_sandbox(self, sandbox: str, lease: BackgroundLease) -> ReconcileReport:
        now_ms = int(time.time() * 1000)
        activations = await self._store.reconcilable(sandbox)
        last_sweep = await self._leases.watermark(FULL_SWEEP, sandbox)
        changed_after = await self._leases.watermark(FLOWS_CHANGED, sandbox)
        if last_sweep is None or changed_after is None or now_ms - last_sweep >= self._full_sweep_ms:
            report = await self._reconcile(activations, sandbox, lease)
            await self._leases.set_watermark(FULL_SWEEP, sandbox, now_ms, lease=lease)
            await self._leases.set_watermark(FLOWS_CHANGED, sandbox, now_ms - OVERLAP_MS, lease=lease)
            return report
        params = [("property", f"updatedAt>{changed_after}"), ("limit", PAGE_LIMIT)]
        changed = {str(f.get("id")): f for f in await self._flows.list_all(FLOWS, sandbox=sandbox, params=params)}
        report = await self._reconcile([a for a in activations if a.flow_id in changed], sandbox, lease, flows=changed)
        newest = max((ms for ms in (_ms(f.get("updatedAt")) for f in changed.values()) if ms is not None), default=None)
        if newest is not None:
            mark = min(newest, now_ms) - OVERLAP_MS  # Adobe's clock and ours differ a little
            if mark > changed_after:
                await self._leases.set_watermark(FLOWS_CHANGED, sandbox, mark, lease=lease)
        return report

    async def _reconcile(
        self,
        activations: Sequence[Reconcilable],
        sandbox: str,
        lease: BackgroundLease | None,
        *,
        flows: dict[str, dict[str, Any]] | None = None,
    ) -> ReconcileReport:
        """Compare these activations with their flows (read by id unless given)."""
        if not activations:
            return ReconcileReport(0, 0, 0)
        if flows is None:
            flows = {}
            for ids in chunks([a.flow_id for a in activations], IDS_PER_CALL):
                params = [("property", f"id=={','.join(ids)}"), ("limit", PAGE_LIMIT)]
                for flow in await self._flows.list_all(FLOWS, sandbox=sandbox, params=params):
                    flows[str(flow.get("id"))] = flow
        found = []
        for activation in activations:
            desired = desired_flow_of(activation.id, activation.name, activation.segments, activation.attributes)
            found.append((activation, flow_drift(flows.get(activation.flow_id), desired, activation.desired_state)))
        recorded = await self._store.record(found, lease=lease)
        if recorded.fenced_out:
            log.warning("reconcile lost its lease; another process goes on")
            return ReconcileReport(0, 0, 0)
        if recorded.newly_drifted:
            self._observer.drift_found_in(len(recorded.newly_drifted))
        repairs = 0
        for activation, differences in found:
            kind = repair_for(differences) if activation.drift_policy == ENFORCE else None
            if kind is None:
                continue
            definition = self._workflows.current(kind)
            queued = await self._store.queue_repair(
                activation, kind=kind.value, version=definition.version, steps=definition.step_names
            )
            if queued is not None:
                repairs += 1
                log.info("drift repair queued", activation_id=str(activation.id), kind=kind.value)
        if repairs:
            self._observer.drift_repairs_queued(repairs)
        drifted = sum(1 for _, differences in found if differences)
        return ReconcileReport(len(found), drifted, repairs)
