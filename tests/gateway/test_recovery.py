"""Crash recovery with real processes: the service dies in the middle of a saga and a new process
finishes the activation with exactly one upstream resource of each kind."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import assert_flow_lists, assert_one_of_each
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request


def step_status(body: dict[str, Any], name: str) -> str:
    return str(next(s["status"] for s in body["steps"] if s["name"] == name))


@pytest.mark.parametrize("how", ["sigkill", "sigterm"])
def test_restart_in_the_middle_of_a_saga_completes_it_once(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, how: str
) -> None:
    # Every upstream call takes 300 ms, which opens a window in the middle of the saga.
    httpx.post(f"{emulator.url}/_emulator/latency", json={"fixedMs": 300}).raise_for_status()
    first = start_gateway(LEASE_SECONDS="3")
    body = s3_request()
    with first.client() as client:
        accepted = client.post("/activations", json=body, headers={"Idempotency-Key": new_key()})
        assert accepted.status_code == 202
        activation_id = accepted.json()["id"]
        wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda b: step_status(b, "create_source_base_connection") == "succeeded",
        )
    if how == "sigkill":
        first.kill()
    else:
        first.signal(signal.SIGTERM)
        assert first.process is not None
        # uvicorn shuts down gracefully, then re-raises the signal: the exit status says SIGTERM.
        assert first.process.wait(timeout=30) in (0, -signal.SIGTERM)

    with first.client() as probe, pytest.raises(httpx.ConnectError):
        probe.get("/health/live")

    second = start_gateway(LEASE_SECONDS="3")
    with second.client() as client:
        interrupted = client.get(f"/activations/{activation_id}").json()
        assert interrupted["status"] in ("pending", "running"), "the first process did not finish it"
        final = wait_terminal(client, activation_id, timeout=60)
    assert final["status"] == "succeeded", final
    found = assert_one_of_each(emulator, activation_id)
    assert_flow_lists(found["flows"][0], body)
