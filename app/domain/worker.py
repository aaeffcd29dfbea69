"""The saga worker: the activation rows are the queue.

Claims use ``FOR UPDATE SKIP LOCKED`` so any number of processes can share one database; a claim is
a lease with an epoch (fencing token) that a heartbeat renews; expired leases are claimed again by
anyone. New work is signalled through the WorkSignal port (LISTEN/NOTIFY), with a short poll as the safety net.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import structlog

from .model import Lease, LeaseLost
from .ports import Housekeeping, SagaStore, WorkSignal
from .saga import SagaRunner

log = structlog.get_logger(__name__)

# Keep a margin between our local idea of the lease and the database's: clocks and queries take time.
_LEASE_SAFETY = 0.8
_REAP_INTERVAL_SECONDS = 600.0
_ERROR_BACKOFF_SECONDS = 5.0
# While the database is unreachable the claim loop retries this often (doubling from the first to
# the most): it comes back within about a second of it answering.
_DB_RETRY_FIRST_SECONDS = 0.5
_DB_RETRY_MAX_SECONDS = 1.0


class Worker:
    def __init__(
        self,
        housekeeping: Housekeeping,
        store: SagaStore,
        runner: SagaRunner,
        *,
        signal: WorkSignal,
        owner: str,
        concurrency: int,
        lease_seconds: float,
        poll_interval: float,
    ) -> None:
        self._housekeeping = housekeeping
        self._store = store
        self._runner = runner
        self._signal = signal
        self._concurrency = concurrency
        self._lease_seconds = lease_seconds
        self._poll_interval = poll_interval
        self.owner = owner
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._inflight: dict[uuid.UUID, asyncio.Task[None]] = {}
        self.last_heartbeat = time.monotonic()
        self._last_reap = 0.0

    @property
    def active_leases(self) -> int:
        return len(self._inflight)

    def alive(self, within_seconds: float) -> bool:
        return time.monotonic() - self.last_heartbeat < within_seconds

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="worker-listen")
        failures = 0
        backoff = _DB_RETRY_FIRST_SECONDS
        try:
            while not self._stopping.is_set():
                self.last_heartbeat = time.monotonic()
                try:
                    await self._claim_and_start()
                    await self._maybe_reap()
                except Exception as exc:  # the database may be down for a while: keep the loop alive
                    # Once per outage, not once a tick.
                    if failures == 0:
                        log.exception("worker loop error; retrying until it succeeds")
                    else:
                        log.debug("worker loop error again", error=type(exc).__name__, failures=failures + 1)
                    failures += 1
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, _DB_RETRY_MAX_SECONDS)
                    continue
                if failures:
                    log.info("worker loop recovered", failures=failures)
                    failures = 0
                    backoff = _DB_RETRY_FIRST_SECONDS
                await self._sleep(self._poll_interval)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def stop(self, grace_seconds: float = 10.0) -> None:
        """Stop claiming; let the steps in flight finish (they stop at the next boundary), then release."""
        self._stopping.set()
        self._wake.set()
        self._runner.stop_at_next_boundary()
        tasks = list(self._inflight.values())
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def _claim_and_start(self) -> None:
        while not self._stopping.is_set():
            free = self._concurrency - len(self._inflight)
            if free <= 0:
                return
            started = time.monotonic()
            claimed = await self._store.claim(owner=self.owner, limit=free, lease_seconds=self._lease_seconds)
            for item in claimed:
                lease = Lease(
                    activation_id=item.activation_id,
                    epoch=item.epoch,
                    owner=self.owner,
                    valid_until=started + self._lease_seconds * _LEASE_SAFETY,
                    workflow_version=item.workflow_version,
                )
                task = asyncio.create_task(self._process(lease), name=f"saga-{item.activation_id}")
                self._inflight[item.activation_id] = task
            if len(claimed) < free:
                return

    async def _process(self, lease: Lease) -> None:
        # This coroutine is a task of its own (a copy of the context): the binding labels every log
        # line of this activation's run, the heartbeat's and the saga's steps' included.
        structlog.contextvars.bind_contextvars(activation_id=str(lease.activation_id))
        heartbeat = asyncio.create_task(self._heartbeat(lease, asyncio.current_task()))
        delay = 0.0
        released = False
        try:
            status = await self._runner.run(lease)
            released = status.terminal  # the terminal write released the lease
            log.info("activation processed", activation_id=str(lease.activation_id), status=str(status))
        except LeaseLost as exc:
            log.warning(
                "lease lost; stopping without further changes", activation_id=str(lease.activation_id), reason=str(exc)
            )
            return
        except asyncio.CancelledError:
            log.info("activation run cancelled (shutdown or lease lost)", activation_id=str(lease.activation_id))
        except Exception as exc:
            log.exception("saga crashed; will retry later", activation_id=str(lease.activation_id))
            delay = await self._after_crash(lease, exc)
        finally:
            heartbeat.cancel()
            self._inflight.pop(lease.activation_id, None)
            self._wake.set()  # a slot is free
        if not released:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store.release(lease, delay_seconds=delay))

    async def _after_crash(self, lease: Lease, exc: Exception) -> float:
        """Count the crash (the runner ends an activation that keeps crashing); returns how long
        to wait before it is claimed again: doubling, so a bug costs few upstream calls."""
        try:
            crashes = await self._runner.record_crash(lease, exc)
        except Exception:  # the database may be what failed: the next claim tries again
            log.exception("could not record the crash", activation_id=str(lease.activation_id))
            return _ERROR_BACKOFF_SECONDS
        return min(_ERROR_BACKOFF_SECONDS, 0.5 * 2.0 ** max(crashes - 1, 0))

    async def _heartbeat(self, lease: Lease, saga: asyncio.Task[None] | None) -> None:
        interval = self._lease_seconds / 3
        while True:
            await asyncio.sleep(interval)
            started = time.monotonic()
            try:
                renewed = await self._store.renew(lease, self._lease_seconds)
            except Exception:
                log.exception("lease renewal failed", activation_id=str(lease.activation_id))
                continue  # the local deadline still protects us
            if not renewed:
                log.warning("lease taken over", activation_id=str(lease.activation_id))
                lease.valid_until = 0.0
                if saga is not None:
                    saga.cancel()
                return
            lease.valid_until = started + self._lease_seconds * _LEASE_SAFETY

    async def _listen(self) -> None:
        """Wake the claim loop on every signal (the signal reconnects on its own; polling covers any gap)."""
        await self._signal.listen(self._wake.set)

    async def _maybe_reap(self) -> None:
        now = time.monotonic()
        if now - self._last_reap < _REAP_INTERVAL_SECONDS:
            return
        self._last_reap = now
        removed = await self._housekeeping.reap_idempotency_keys()
        if removed:
            log.info("reaped idempotency keys", count=removed)
