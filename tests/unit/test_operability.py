"""Unit checks of the drain-then-shutdown signal handling and of the saga metrics observer."""

from __future__ import annotations

import signal

import uvicorn
from prometheus_client import generate_latest

from app.adapters.db.stats import QueueStats
from app.metrics import Metrics
from app.server import DrainingServer


def _server(drain_seconds: float, calls: list[str]) -> DrainingServer:
    config = uvicorn.Config(app=lambda *_: None, log_config=None)
    return DrainingServer(config, drain_seconds=drain_seconds, on_drain=lambda: calls.append("drain"))


def test_first_signal_only_drains_second_one_exits() -> None:
    calls: list[str] = []
    server = _server(60.0, calls)
    server.handle_exit(signal.SIGTERM, None)
    assert calls == ["drain"] and server.draining
    assert not server.should_exit, "the server keeps serving during the drain delay"
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and calls == ["drain"]


def test_without_a_delay_the_signal_exits_at_once() -> None:
    calls: list[str] = []
    server = _server(0.0, calls)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and calls == []


def test_metrics_observe_the_saga() -> None:
    metrics = Metrics()
    metrics.step_finished("create_flow", "succeeded", 0.2)
    metrics.step_retried("create_flow", "503")
    metrics.activation_finished("succeeded", 3.0)
    metrics.count_token_refreshes(lambda: 2)
    metrics.refresh_queue(QueueStats(by_status={"pending": 4, "running": 1, "rolling_back": 0}, waiting=4, leased=1))
    text = generate_latest(metrics.registry).decode()
    assert 'gateway_step_duration_seconds_count{outcome="succeeded",step="create_flow"} 1.0' in text
    assert 'gateway_step_retries_total{reason="503",step="create_flow"} 1.0' in text
    assert 'gateway_activations_finished_total{status="succeeded"} 1.0' in text
    assert 'gateway_activation_duration_seconds_bucket{le="5.0",status="succeeded"} 1.0' in text
    assert "gateway_ims_token_refreshes_total 2.0" in text
    assert 'gateway_activations{status="pending"} 4.0' in text
    assert "gateway_activations_waiting 4.0" in text


def test_unreadable_queue_drops_the_gauges_instead_of_keeping_stale_values() -> None:
    metrics = Metrics()
    metrics.refresh_queue(QueueStats(by_status={"pending": 4}, waiting=4, leased=0))
    metrics.refresh_queue(None)
    text = generate_latest(metrics.registry).decode()
    assert "gateway_queue_stats_up 0.0" in text
    assert 'gateway_activations{status="pending"}' not in text
    assert "gateway_activations_waiting NaN" in text
