"""SIGKILL at every step boundary of an update, with real processes (as test_operation_crash_points.py
does for a pause): before Adobe's answer to the PATCH (never applied), after Adobe applied it but
before the local commit, right after the local commit of apply_desired_state (the read back in
flight), and while a PATCH that Adobe commits late is unanswered. A second process takes over and
ends the update succeeded with the flow holding exactly the desired state: no duplicate selector,
no lost one, one update operation. Then faults without a kill: a PATCH that fails at once but
lands later (the read back waits it out and converges), and 412 storms (re-read and recompute;
past the bound the update fails and the live activation keeps what it had)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for
from tests.gateway.test_activation_e2e import flow_service_requests
from tests.gateway.test_crash_points import FAST_TAKEOVER, fired
from tests.gateway.test_faults import add_fault, fault_fired
from tests.gateway.test_late_commit import wait_committed
from tests.gateway.test_operations_e2e import (
    add_latency,
    get_activation,
    get_operation,
    kinds,
    live,
    operation_id,
    wait_operation,
)
from tests.gateway.test_updates_e2e import assert_flow_is, patch, patches_sent
from tests.support.gateway import GatewayProcess
from tests.support.payloads import segments

StartGateway = Callable[..., GatewayProcess]
HELD = {"failure": "timeout", "holdMs": 60000}  # far longer than the test: the gateway is killed while it waits
PATCH_FLOW = {"method": "PATCH", "path": "/flows/*"}
GET_FLOW = {"method": "GET", "path": "/flows/*"}
UPDATE_STEPS = ["apply_desired_state", "verify_desired_state"]


def desired(final: dict[str, Any]) -> dict[str, Any]:
    """Add an audience and drop the first: the patch has a remove and an add, so a PATCH applied
    twice would leave a duplicate."""
    return {"segments": [*final["segments"][1:], *segments(1)], "attributes": final["attributes"][:1]}


def start_update(
    start_gateway: StartGateway, emulator: EmulatorServer, rule: dict[str, Any], *, arm_after_read: bool = False
) -> tuple[GatewayProcess, dict[str, Any], str, str]:
    """A live activation on a first process, then an update under the fault ``rule``; returns once
    the rule fired (the emulator holds the request). With ``arm_after_read`` the rule is armed only
    once the update has read the flow (its PATCH is slowed down meanwhile), so it catches the read back."""
    first = start_gateway(**FAST_TAKEOVER)
    final = live(first)
    fault = ""
    if arm_after_read:
        add_latency(emulator, {**PATCH_FLOW, "fixedMs": 1500})
    else:
        fault = add_fault(emulator, {"times": 1, **rule})
    reads_before = len(flow_reads(emulator, final["flow"]["id"]))
    with first.client() as client:
        accepted = patch(client, final["id"], desired(final), wait=None)
        assert accepted.status_code == 202, accepted.text
        update_id = operation_id(accepted, final["id"])
        if arm_after_read:
            wait_for(lambda: flow_reads(emulator, final["flow"]["id"]), lambda r: len(r) > reads_before, timeout=30)
            fault = add_fault(emulator, {"times": 1, **rule})
        wait_for(lambda: {"fired": fired(emulator, fault)}, lambda r: r["fired"], timeout=30)
    return first, final, update_id, fault


def flow_reads(emulator: EmulatorServer, flow_id: str) -> list[dict[str, Any]]:
    return [
        e for e in flow_service_requests(emulator) if e["method"] == "GET" and e["path"].endswith(f"/flows/{flow_id}")
    ]


def steps_of(client: httpx.Client, activation_id: str, op_id: str) -> list[tuple[str, int]]:
    return [(s["status"], s["attempts"]) for s in get_operation(client, activation_id, op_id)["steps"]]


def finish_after_crash(
    start_gateway: StartGateway, emulator: EmulatorServer, final: dict[str, Any], update_id: str
) -> dict[str, Any]:
    """A second process ends the update; the flow holds exactly the desired state."""
    httpx.delete(f"{emulator.url}/_emulator/faults").raise_for_status()
    httpx.delete(f"{emulator.url}/_emulator/latency").raise_for_status()
    activation_id = final["id"]
    second = start_gateway(**FAST_TAKEOVER)
    with second.client() as client:
        update = wait_operation(client, activation_id, update_id, timeout=60)
        assert update["status"] == "succeeded", update
        assert [s["status"] for s in update["steps"]] == ["succeeded"] * len(UPDATE_STEPS)
        after = get_activation(client, activation_id)
        assert kinds(client, activation_id) == ["update", "create"], "exactly one update operation"
    assert (after["revision"], after["appliedRevision"]) == (2, 2), after
    assert after["sync"]["status"] == "in_sync"
    assert_flow_is(emulator, after)
    return update


def test_kill_before_adobes_answer_the_patch_never_applied(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    first, final, update_id, _ = start_update(
        start_gateway, emulator, {**PATCH_FLOW, "mode": "late_commit", "commitAfterMs": 600000, **HELD}
    )
    with first.client() as client:
        assert steps_of(client, final["id"], update_id) == [("running", 1), ("pending", 0)]
    first.kill()
    assert httpx.delete(f"{emulator.url}/_emulator/lateCommits").json()["cancelled"] == 1

    update = finish_after_crash(start_gateway, emulator, final, update_id)
    assert [s["attempts"] for s in update["steps"]] == [2, 1]
    assert len(patches_sent(emulator, final["flow"]["id"])) == 3, "the create's, the lost one, the takeover's"


def test_kill_after_adobe_applied_the_patch_before_the_local_commit(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    first, final, update_id, _ = start_update(
        start_gateway, emulator, {**PATCH_FLOW, "mode": "commit_then_fail", **HELD}
    )
    first.kill()
    update = finish_after_crash(start_gateway, emulator, final, update_id)
    assert [s["attempts"] for s in update["steps"]] == [2, 1]
    # The takeover read the flow first, found it as desired, and sent nothing again.
    assert len(patches_sent(emulator, final["flow"]["id"])) == 2


def test_kill_right_after_the_local_commit_of_the_patch(start_gateway: StartGateway, emulator: EmulatorServer) -> None:
    first, final, update_id, _ = start_update(
        start_gateway, emulator, {**GET_FLOW, "mode": "commit_then_fail", **HELD}, arm_after_read=True
    )
    with first.client() as client:
        assert steps_of(client, final["id"], update_id) == [("succeeded", 1), ("running", 1)]
    first.kill()
    update = finish_after_crash(start_gateway, emulator, final, update_id)
    assert [s["attempts"] for s in update["steps"]] == [1, 2]
    assert len(patches_sent(emulator, final["flow"]["id"])) == 2, "a committed step is not run again"


def test_kill_while_a_patch_that_commits_late_is_unanswered(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    # Adobe applies the PATCH 400 ms after it arrived (within the 0.5 s late-commit window), while no
    # gateway runs: the takeover finds the flow as desired and sends nothing again.
    first, final, update_id, fault = start_update(
        start_gateway, emulator, {**PATCH_FLOW, "mode": "late_commit", "commitAfterMs": 400, **HELD}
    )
    first.kill()
    wait_committed(emulator, fault)
    update = finish_after_crash(start_gateway, emulator, final, update_id)
    assert [s["attempts"] for s in update["steps"]] == [2, 1]
    assert len(patches_sent(emulator, final["flow"]["id"])) == 2


@pytest.mark.parametrize("failure", [{"failure": "error", "status": 504}, {"failure": "drop"}], ids=["504", "drop"])
def test_a_patch_that_lands_after_its_retry_converges(
    start_gateway: StartGateway, emulator: EmulatorServer, failure: dict[str, Any]
) -> None:
    """The PATCH fails at once but Adobe applies it 400 ms later; the retry re-reads and patches
    again. Whatever the late one did after that, the read back waits it out and converges."""
    gateway = start_gateway(**FAST_TAKEOVER)
    final = live(gateway)
    fault = add_fault(emulator, {**PATCH_FLOW, "mode": "late_commit", "commitAfterMs": 400, "times": 1, **failure})
    with gateway.client() as client:
        accepted = patch(client, final["id"], desired(final), wait=None)
        update = wait_operation(client, final["id"], operation_id(accepted, final["id"]))
        assert update["status"] == "succeeded", update
        after = get_activation(client, final["id"])
    wait_committed(emulator, fault)
    assert fault_fired(emulator, fault) == 1
    assert after["appliedRevision"] == after["revision"] == 2
    assert_flow_is(emulator, after)


def test_a_412_storm_is_recomputed_then_bounded(start_gateway: StartGateway, emulator: EmulatorServer) -> None:
    gateway = start_gateway(**FAST_TAKEOVER)
    final = live(gateway)
    with gateway.client() as client:
        # A few 412s: each is a fresh read and a recomputed patch.
        storm = add_fault(emulator, {**PATCH_FLOW, "mode": "error", "status": 412, "times": 3})
        accepted = patch(client, final["id"], desired(final), wait=None)
        update = wait_operation(client, final["id"], operation_id(accepted, final["id"]))
        assert update["status"] == "succeeded", update
        assert fault_fired(emulator, storm) == 3
        after = get_activation(client, final["id"])
        assert_flow_is(emulator, after)

        # An endless one: the update fails for good; the live activation keeps what it had.
        add_fault(emulator, {**PATCH_FLOW, "mode": "error", "status": 412, "times": 100})
        flow_before = get_activation(client, final["id"])["flow"]
        accepted = patch(client, final["id"], {"segments": segments(2)}, wait=None)
        failed = wait_operation(client, final["id"], operation_id(accepted, final["id"]))
        assert failed["status"] == "failed" and failed["error"]["type"].endswith("flow-keeps-changing"), failed
        kept = get_activation(client, final["id"])
        assert kept["status"] == "succeeded" and kept["appliedRevision"] == 2 and kept["revision"] == 3
        assert kept["sync"]["status"] == "failed" and kept["sync"]["error"]["type"] == failed["error"]["type"]
        assert kept["flow"]["id"] == flow_before["id"]
