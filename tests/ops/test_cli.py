"""The console script's `worker` (scale-out, SIGTERM) and `demo` commands, as real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx

from flowservice_emulator import EmulatorServer
from tests.conftest import gateway_env, wait_terminal
from tests.ops.support import json_lines, scrape, value
from tests.support.gateway import ROOT, GatewayProcess, free_port
from tests.support.payloads import s3_request


def test_separate_worker_runs_activations_and_stops_on_sigterm(
    start_gateway: Callable[..., GatewayProcess], isolated_database: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    api = start_gateway(args=["--no-worker"])
    metrics_port = free_port()
    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app", "worker", "--metrics-port", str(metrics_port), "--metrics-host", "127.0.0.1"],
            cwd=ROOT,
            env={**os.environ, **gateway_env(isolated_database, emulator)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with api.client() as client:
            created = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": "worker-1"})
            assert created.status_code == 202
            assert wait_terminal(client, created.json()["id"])["status"] == "succeeded"
            ready = client.get("/health/ready").json()["checks"]
            assert "worker:heartbeat" not in ready  # the API process runs no worker
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert value(samples, "gateway_activations_finished_total", status="succeeded") == 1
        assert value(samples, "gateway_step_duration_seconds_count", step="verify_flow", outcome="succeeded") == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        returncode = worker.wait(timeout=30)
    assert returncode == 0, log_path.read_text()[-2000:]
    events = [entry["event"] for entry in json_lines(log_path.read_text())]
    assert "worker stopping" in events
    try:
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=1)
        raise AssertionError("the worker's metrics endpoint outlived the process")
    except httpx.TransportError:
        pass


def test_demo_prints_the_step_timeline(isolated_database: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": isolated_database, "DATA_DIR": str(tmp_path / "data")}
    for name in ("FLOW_SERVICE_URL", "IMS_TOKEN_URL", "ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID"):
        env.pop(name, None)
    result = subprocess.run(
        [sys.executable, "-m", "app", "demo"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("activation ") and line.endswith(": succeeded") for line in lines), result.stdout
    header = next(line for line in lines if line.startswith("step "))
    assert header.split() == ["step", "status", "attempts", "duration", "upstream", "calls"]
    rows = {line.split()[0]: line for line in lines[lines.index(header) + 2 :] if line.strip()}
    for step in ("resolve_destination", "create_flow", "activate_segments", "verify_flow"):
        assert "succeeded" in rows[step], rows
    assert "POST /flows → 201" in rows["create_flow"]
    assert "PATCH /flows/{id} → 200" in rows["activate_segments"]
