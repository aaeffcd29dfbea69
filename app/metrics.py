"""Prometheus metrics, one registry per running service (so tests can build several apps)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.adapters.flowservice import UpstreamCall

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


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

    def observe_upstream(self, call: UpstreamCall) -> None:
        status = str(call.status) if call.status is not None else "network_error"
        self.upstream_calls.labels(call.endpoint, call.method, status).inc()
        self.upstream_latency.labels(call.endpoint, call.method).observe(call.duration_ms / 1000)
