"""SIGKILL at every step boundary, with real processes: before the upstream answer (intent
recorded, request in flight), after the upstream commit but before the local one, and right after
the local commit. A new process finishes the activation with exactly one resource of each kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import assert_flow_lists, assert_one_of_each
from tests.gateway.test_faults import STEP_FAULTS, add_fault
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

FAST_TAKEOVER = {"LEASE_SECONDS": "2", "UPSTREAM_TIMEOUT_SECONDS": "30", "SHUTDOWN_DELAY_SECONDS": "0"}


def step_of(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in body["steps"] if s["name"] == name)


def fired(emulator: EmulatorServer, fault_id: str) -> bool:
    items = httpx.get(f"{emulator.url}/_emulator/faults").json()["items"]
    return any(f["id"] == fault_id and f["fired"] >= 1 for f in items)


def finish_after_crash(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, activation_id: str, body: dict[str, Any]
) -> None:
    httpx.delete(f"{emulator.url}/_emulator/latency").raise_for_status()
    second = start_gateway(**FAST_TAKEOVER)
    with second.client() as client:
        final = wait_terminal(client, activation_id, timeout=60)
    assert final["status"] == "succeeded", final
    found = assert_one_of_each(emulator, activation_id)
    assert_flow_lists(found["flows"][0], body)


@pytest.mark.parametrize("step", list(STEP_FAULTS))
def test_kill_after_upstream_commit_before_local_commit(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, step: str
) -> None:
    # The emulator commits the step's write and holds the answer: the gateway is killed while it waits.
    fault = add_fault(
        emulator, {**STEP_FAULTS[step], "mode": "commit_then_fail", "failure": "timeout", "holdMs": 60000}
    )
    first = start_gateway(**FAST_TAKEOVER)
    body = s3_request()
    with first.client() as client:
        activation_id = client.post("/activations", json=body, headers={"Idempotency-Key": new_key()}).json()["id"]
        wait_for(lambda: {"fired": fired(emulator, fault)}, lambda r: r["fired"], timeout=30)
        assert step_of(client.get(f"/activations/{activation_id}").json(), step)["status"] == "running"
    first.kill()
    httpx.delete(f"{emulator.url}/_emulator/faults").raise_for_status()
    finish_after_crash(start_gateway, emulator, activation_id, body)


def kill_when_step_is(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, step: str, status: str
) -> None:
    """Every upstream call takes 400 ms; SIGKILL the process as soon as ``step`` shows ``status``."""
    httpx.post(f"{emulator.url}/_emulator/latency", json={"fixedMs": 400}).raise_for_status()
    first = start_gateway(**FAST_TAKEOVER)
    body = s3_request()
    with first.client() as client:
        activation_id = client.post("/activations", json=body, headers={"Idempotency-Key": new_key()}).json()["id"]
        seen = wait_for(
            lambda: client.get(f"/activations/{activation_id}").json(),
            lambda b: step_of(b, step)["status"] == status,
            timeout=60,
        )
    first.kill()
    assert seen["status"] == "running", "killed in the middle of the saga"
    finish_after_crash(start_gateway, emulator, activation_id, body)


@pytest.mark.parametrize("step", [*STEP_FAULTS, "verify_flow"])
def test_kill_while_the_upstream_call_is_in_flight(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, step: str
) -> None:
    kill_when_step_is(start_gateway, emulator, step, "running")


@pytest.mark.parametrize("step", [*STEP_FAULTS, "resolve_destination"])
def test_kill_right_after_the_local_commit(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer, step: str
) -> None:
    kill_when_step_is(start_gateway, emulator, step, "succeeded")
