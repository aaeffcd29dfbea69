"""/metrics after a known run of activations: counts and histograms with the right values."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from app.domain.steps import SAGA_STEPS, STEP_NAMES
from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.ops.support import scrape, total, value
from tests.support.gateway import GatewayProcess
from tests.support.payloads import s3_request

CREATING_STEPS = [step.name for step in SAGA_STEPS if step.kind is not None]


def test_metrics_after_a_run(start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer) -> None:
    gateway = start_gateway()
    # The first POST /flows fails once with a retryable 503: one retry of create_flow.
    httpx.post(
        f"{emulator.url}/_emulator/faults",
        json={"method": "POST", "path": "/flows", "mode": "error", "status": 503, "times": 1},
    ).raise_for_status()
    with gateway.client() as client:
        ids = []
        for n in range(3):
            created = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": f"metrics-{n}"})
            assert created.status_code == 202, created.text
            ids.append(created.json()["id"])
        assert [wait_terminal(client, i)["status"] for i in ids] == ["succeeded"] * 3
        assert client.post(f"/activations/{ids[0]}/rollback").status_code == 202
        assert wait_terminal(client, ids[0])["status"] == "rolled_back"
        assert client.get("/activations/not-a-uuid").status_code == 404

    samples = scrape(f"{gateway.url}/metrics")

    assert value(samples, "gateway_activations_created_total") == 3
    assert value(samples, "gateway_activations_finished_total", status="succeeded") == 3
    assert value(samples, "gateway_activations_finished_total", status="rolled_back") == 1
    assert value(samples, "gateway_activation_duration_seconds_count", status="succeeded") == 3
    assert value(samples, "gateway_activation_duration_seconds_count", status="rolled_back") == 1
    assert value(samples, "gateway_activation_duration_seconds_bucket", status="succeeded", le="+Inf") == 3

    for step in STEP_NAMES:
        assert value(samples, "gateway_step_duration_seconds_count", step=step, outcome="succeeded") == 3, step
    for step in CREATING_STEPS:
        assert value(samples, "gateway_step_duration_seconds_count", step=step, outcome="compensated") == 1, step
    assert total(samples, "gateway_step_duration_seconds_count", outcome="failed") == 0

    assert value(samples, "gateway_step_retries_total", step="create_flow", reason="503") == 1
    assert total(samples, "gateway_step_retries_total") == 1

    # Upstream calls by endpoint, method and status, with latency histograms.
    assert value(samples, "gateway_upstream_calls_total", endpoint="/flows", method="POST", status="201") == 3
    assert value(samples, "gateway_upstream_calls_total", endpoint="/flows", method="POST", status="503") == 1
    assert value(samples, "gateway_upstream_call_duration_seconds_count", endpoint="/flows", method="POST") == 4
    assert value(samples, "gateway_upstream_calls_total", endpoint="/flows/{id}", method="PATCH", status="200") == 3
    assert total(samples, "gateway_upstream_calls_total", endpoint="/flows/{id}", method="DELETE") == 1
    assert value(samples, "gateway_ims_token_refreshes_total") == 1  # one token serves the whole run

    # HTTP requests by route template (bounded labels: ids never appear) and status.
    assert value(samples, "gateway_http_requests_total", method="POST", route="/activations", status="202") == 3
    assert (
        value(samples, "gateway_http_requests_total", method="GET", route="/activations/{activation_id}", status="404")
        == 1
    )
    assert not any(ids[0] in dict(labels).get("route", "") for (_, labels) in samples)

    # Nothing left to do: the database-wide queue gauges are zero.
    assert value(samples, "gateway_queue_stats_up") == 1
    for status in ("pending", "running", "rolling_back"):
        assert value(samples, "gateway_activations", status=status) == 0
    assert value(samples, "gateway_activations_waiting") == 0
    assert value(samples, "gateway_activations_leased") == 0
    assert value(samples, "gateway_worker_active_leases") == 0


def test_queue_gauges_count_waiting_activations(start_gateway: Callable[..., GatewayProcess]) -> None:
    gateway = start_gateway(args=["--no-worker"])  # nobody claims: whatever is created waits
    with gateway.client() as client:
        for n in range(2):
            assert client.post("/activations", json=s3_request(), headers={"Idempotency-Key": f"q-{n}"}).is_success
    samples = wait_for(
        lambda: {"s": scrape(f"{gateway.url}/metrics")},
        lambda d: value(d["s"], "gateway_activations", status="pending") == 2,
    )["s"]
    assert value(samples, "gateway_activations_waiting") == 2
    assert value(samples, "gateway_activations_leased") == 0
    assert value(samples, "gateway_activations", status="running") == 0
