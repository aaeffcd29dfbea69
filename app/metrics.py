"""Prometheus metrics, one registry per running service (so tests can build several apps).

``Metrics`` is also the saga's observer (app/domain/observer.py): the domain reports steps, retries
and finished activations through that protocol and never imports prometheus_client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from app.adapters.db.stats import QueueStats
from app.domain.ports import UpstreamCall

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# A step includes its retries and backoff; an activation includes queueing and every step.
_STEP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
_ACTIVATION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "gateway_http_requests_total",
            "HTTP requests served",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "gateway_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.activations_created = Counter(
            "gateway_activations_created_total", "Activations accepted", registry=self.registry
        )
        self.upstream_calls = Counter(
            "gateway_upstream_calls_total",
            "Calls to Adobe",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.upstream_latency = Histogram(
            "gateway_upstream_call_duration_seconds",
            "Latency of calls to Adobe",
            ["endpoint", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.active_leases = Gauge(
            "gateway_worker_active_leases", "Activations this process is working on", registry=self.registry
        )
        self.activations_finished = Counter(
            "gateway_activations_finished_total",
            "Activations this process brought to a terminal status",
            ["status"],
            registry=self.registry,
        )
        self.activation_duration = Histogram(
            "gateway_activation_duration_seconds",
            "From acceptance to terminal status",
            ["status"],
            buckets=_ACTIVATION_BUCKETS,
            registry=self.registry,
        )
        self.step_duration = Histogram(
            "gateway_step_duration_seconds",
            "One saga step, all its attempts and backoff included",
            ["step", "outcome"],
            buckets=_STEP_BUCKETS,
            registry=self.registry,
        )
        self.step_retries = Counter(
            "gateway_step_retries_total",
            "Step attempts that failed with a retryable upstream error",
            ["step", "reason"],
            registry=self.registry,
        )
        self.duplicates_removed = Counter(
            "gateway_upstream_duplicates_removed_total",
            "Copies of created resources that a late commit left upstream, found and deleted",
            ["kind"],
            registry=self.registry,
        )
        self.compensation_retries = Counter(
            "gateway_compensation_retries_total",
            "Automatic retries of failed compensations (rollback_failed) started",
            registry=self.registry,
        )
        self.run_crashes = Counter(
            "gateway_run_crashes_total",
            "Activation runs that ended in an unexpected exception",
            registry=self.registry,
        )
        self.operations_finished = Counter(
            "gateway_operations_finished_total",
            "Operations of live activations (pause, resume, …) that ended, by kind and status",
            ["kind", "status"],
            registry=self.registry,
        )
        self.operation_duration = Histogram(
            "gateway_operation_duration_seconds",
            "From an operation's start to its end, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.workflows_unavailable = Counter(
            "gateway_workflow_unavailable_total",
            "Operations this process left for another because it lacks their workflow version",
            ["kind"],
            registry=self.registry,
        )
        # Contract §12, §13: runs mirrored from Adobe, drift, and the background cycles.
        self.runs_finished = Counter(
            "gateway_export_runs_total", "Export runs seen finished, by status", ["status"], registry=self.registry
        )
        self.run_records = Counter(
            "gateway_export_run_records_total",
            "Records of finished export runs, by outcome (exported, skipped)",
            ["outcome"],
            registry=self.registry,
        )
        self.runs_delayed = Counter(
            "gateway_export_runs_delayed_total",
            "Export runs reported for processing past RUN_DELAY_THRESHOLD_SECONDS",
            registry=self.registry,
        )
        self.drift_found = Counter(
            "gateway_drift_found_total", "Activations found drifted (or drifted differently)", registry=self.registry
        )
        self.drift_repairs = Counter(
            "gateway_drift_repairs_total",
            "Operations queued to restore a drifted flow (enforce)",
            registry=self.registry,
        )
        self.cycle_duration = Histogram(
            "gateway_background_cycle_seconds",
            "Duration of a background cycle, by cycle (runs, reconcile)",
            ["cycle"],
            registry=self.registry,
        )
        self.newest_success_age = Gauge(
            "gateway_export_newest_success_age_seconds",
            "Of the live activations that have had a successful run, the largest age of their newest one "
            "(database-wide)",
            registry=self.registry,
        )
        self.unrunnable_operations = Gauge(
            "gateway_unrunnable_operations",
            "Unfinished activations and operations whose workflow version this build lacks (database-wide)",
            registry=self.registry,
        )
        # Read from the database at scrape time (see refresh_queue), so every process reports the
        # same database-wide values: aggregate them with max(), not sum().
        self.activations = Gauge(
            "gateway_activations", "Activations in an active status (database-wide)", ["status"], registry=self.registry
        )
        self.activations_waiting = Gauge(
            "gateway_activations_waiting",
            "Active activations no worker holds a lease on (database-wide)",
            registry=self.registry,
        )
        self.activations_leased = Gauge(
            "gateway_activations_leased",
            "Active activations under a live lease of some worker (database-wide)",
            registry=self.registry,
        )
        self.queue_stats_up = Gauge(
            "gateway_queue_stats_up",
            "1 when the last scrape could read the queue from the database",
            registry=self.registry,
        )

    def count_token_refreshes(self, read: Callable[[], int]) -> None:
        """Expose a counter the IMS token provider keeps itself (it must not know about Prometheus)."""
        self.registry.register(_CallbackCounter("gateway_ims_token_refreshes", "IMS access tokens fetched", read))

    def refresh_queue(self, stats: QueueStats | None) -> None:
        """Set the database-wide gauges; None (the database did not answer) drops them rather than
        leave stale values that look current."""
        self.queue_stats_up.set(0 if stats is None else 1)
        if stats is None:
            self.activations.clear()
            self.activations_waiting.set(float("nan"))
            self.activations_leased.set(float("nan"))
            return
        for status, count in stats.by_status.items():
            self.activations.labels(status).set(count)
        self.activations_waiting.set(stats.waiting)
        self.activations_leased.set(stats.leased)

    # --- SagaObserver --------------------------------------------------------------------------
    def step_finished(self, step: str, outcome: str, seconds: float) -> None:
        self.step_duration.labels(step, outcome).observe(seconds)

    def step_retried(self, step: str, reason: str) -> None:
        self.step_retries.labels(step, reason).inc()

    def activation_finished(self, status: str, seconds: float) -> None:
        self.activations_finished.labels(status).inc()
        self.activation_duration.labels(status).observe(seconds)

    def duplicate_removed(self, kind: str) -> None:
        self.duplicates_removed.labels(kind).inc()

    def compensation_retried(self) -> None:
        self.compensation_retries.inc()

    def run_crashed(self) -> None:
        self.run_crashes.inc()

    def operation_finished(self, kind: str, status: str, seconds: float) -> None:
        self.operations_finished.labels(kind=kind, status=status).inc()
        self.operation_duration.labels(kind=kind).observe(seconds)

    def workflow_unavailable(self, kind: str) -> None:
        self.workflows_unavailable.labels(kind=kind).inc()

    def run_finished(self, status: str, exported: int, skipped: int) -> None:
        self.runs_finished.labels(status=status).inc()
        self.run_records.labels(outcome="exported").inc(exported)
        self.run_records.labels(outcome="skipped").inc(skipped)

    def runs_delayed_found(self, count: int) -> None:
        self.runs_delayed.inc(count)

    def drift_found_in(self, count: int) -> None:
        self.drift_found.inc(count)

    def drift_repairs_queued(self, count: int) -> None:
        self.drift_repairs.inc(count)

    def cycle_finished(self, cycle: str, seconds: float) -> None:
        self.cycle_duration.labels(cycle=cycle).observe(seconds)

    def observe_upstream(self, call: UpstreamCall) -> None:
        status = str(call.status) if call.status is not None else "network_error"
        self.upstream_calls.labels(call.endpoint, call.method, status).inc()
        self.upstream_latency.labels(call.endpoint, call.method).observe(call.duration_ms / 1000)


class _CallbackCounter(Collector):
    """A counter whose value lives elsewhere and is read at scrape time."""

    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self._name = name
        self._documentation = documentation
        self._read = read

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._read())
