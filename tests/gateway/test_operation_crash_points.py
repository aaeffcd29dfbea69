"""SIGKILL at every step boundary of a pause, with real processes (as test_crash_points.py does for
the create): before Adobe's answer to the flow action (the action never applied), after Adobe
applied it but before the local commit, and right after the local commit of change_flow_state (the
read back in flight). A second process takes the activation over and ends the pause succeeded, with
the flow disabled, one pause operation, the action sent at most twice and the activation consistent
with Adobe. And an action Adobe applies after the gateway gave up on it (late_commit): the read back
waits it out, so a resume queued behind the pause is not undone by it."""

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
from tests.gateway.test_late_commit import fault_state, wait_committed
from tests.gateway.test_operations_e2e import (
    ACTION,
    FLOW_STATE_STEPS,
    flow_actions,
    get_activation,
    get_operation,
    kinds,
    live,
    mutate,
    operation_id,
    upstream_flow,
    wait_operation,
)
from tests.support.gateway import GatewayProcess

StartGateway = Callable[..., GatewayProcess]
HELD = {"failure": "timeout", "holdMs": 60000}  # far longer than the test: the gateway is killed while it waits
GET_FLOW = {"method": "GET", "path": "/flows/*"}  # in a pause, only verify_flow_state reads the flow


def start_pause(
    start_gateway: StartGateway, emulator: EmulatorServer, rule: dict[str, Any]
) -> tuple[GatewayProcess, dict[str, Any], str, str]:
    """A live activation on a first process; then the fault ``rule`` is armed and a pause is asked
    for. Returns (the process, the activation, the pause's id, the fault's id) once the rule fired,
    i.e. once the emulator holds the pause's request."""
    first = start_gateway(**FAST_TAKEOVER)
    final = live(first)
    fault = add_fault(emulator, {"times": 1, **rule})
    with first.client() as client:
        accepted = mutate(client, final["id"], "pause")
        assert accepted.status_code == 202, accepted.text
        pause_id = operation_id(accepted, final["id"])
        wait_for(lambda: {"fired": fired(emulator, fault)}, lambda r: r["fired"], timeout=30)
    return first, final, pause_id, fault


def step_statuses(client: httpx.Client, activation_id: str, op_id: str) -> list[tuple[str, int]]:
    return [(s["status"], s["attempts"]) for s in get_operation(client, activation_id, op_id)["steps"]]


def finish_after_crash(
    start_gateway: StartGateway, emulator: EmulatorServer, final: dict[str, Any], pause_id: str
) -> dict[str, Any]:
    """A second process ends the pause; the activation and Adobe agree."""
    httpx.delete(f"{emulator.url}/_emulator/faults").raise_for_status()
    activation_id, flow_id = final["id"], final["flow"]["id"]
    second = start_gateway(**FAST_TAKEOVER)
    with second.client() as client:
        pause = wait_operation(client, activation_id, pause_id, timeout=60)
        assert pause["status"] == "succeeded", pause
        assert [s["status"] for s in pause["steps"]] == ["succeeded"] * len(FLOW_STATE_STEPS)
        after = get_activation(client, activation_id)
        assert kinds(client, activation_id) == ["pause", "create"], "exactly one pause operation"
    flow = upstream_flow(emulator, flow_id)
    assert flow["state"] == "disabled"
    assert after["status"] == "succeeded"
    assert (after["revision"], after["appliedRevision"], after["state"]) == (2, 2, "disabled"), after
    assert after["sync"]["status"] == "in_sync" and after["sync"]["error"] is None
    assert after["flow"]["etag"] == flow["etag"]
    actions = flow_actions(emulator, flow_id)
    assert 1 <= len(actions) <= 2 and set(actions) == {"op=disable"}, actions
    return pause


def test_kill_before_adobes_answer_the_action_never_applied(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    # Held with no answer, and never applied: a late commit so late that it is cancelled first.
    first, final, pause_id, _ = start_pause(
        start_gateway, emulator, {**ACTION, "mode": "late_commit", "commitAfterMs": 600000, **HELD}
    )
    with first.client() as client:
        assert step_statuses(client, final["id"], pause_id) == [("running", 1), ("pending", 0)]
    first.kill()
    cancelled = httpx.delete(f"{emulator.url}/_emulator/lateCommits")
    assert cancelled.json()["cancelled"] == 1
    assert upstream_flow(emulator, final["flow"]["id"])["state"] == "enabled", "Adobe never applied it"

    pause = finish_after_crash(start_gateway, emulator, final, pause_id)
    assert [s["attempts"] for s in pause["steps"]] == [2, 1]
    assert flow_actions(emulator, final["flow"]["id"]) == ["op=disable"] * 2, "the takeover sent it again"


def test_kill_after_adobe_applied_the_action_before_the_local_commit(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    first, final, pause_id, _ = start_pause(start_gateway, emulator, {**ACTION, "mode": "commit_then_fail", **HELD})
    with first.client() as client:
        assert step_statuses(client, final["id"], pause_id) == [("running", 1), ("pending", 0)]
    first.kill()
    assert upstream_flow(emulator, final["flow"]["id"])["state"] == "disabled", "Adobe applied it"

    pause = finish_after_crash(start_gateway, emulator, final, pause_id)
    assert [s["attempts"] for s in pause["steps"]] == [2, 1]
    # The takeover read the flow first, found it disabled, and sent nothing again.
    assert flow_actions(emulator, final["flow"]["id"]) == ["op=disable"]


def test_kill_right_after_the_local_commit_of_the_action(start_gateway: StartGateway, emulator: EmulatorServer) -> None:
    # The action is answered and committed locally; the read back that follows is held.
    first, final, pause_id, _ = start_pause(start_gateway, emulator, {**GET_FLOW, "mode": "commit_then_fail", **HELD})
    with first.client() as client:
        assert step_statuses(client, final["id"], pause_id) == [("succeeded", 1), ("running", 1)]
        assert get_activation(client, final["id"])["state"] == "enabled", "not confirmed yet"
    first.kill()

    pause = finish_after_crash(start_gateway, emulator, final, pause_id)
    assert [s["attempts"] for s in pause["steps"]] == [1, 2]
    assert flow_actions(emulator, final["flow"]["id"]) == ["op=disable"], "a committed step is not run again"


def test_kill_while_an_action_that_commits_late_is_unanswered(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    # Adobe applies the action 400 ms after it arrived (within the 0.5 s late-commit window), while
    # no gateway runs: the takeover finds the flow disabled and sends nothing again.
    first, final, pause_id, fault = start_pause(
        start_gateway, emulator, {**ACTION, "mode": "late_commit", "commitAfterMs": 400, **HELD}
    )
    first.kill()
    wait_committed(emulator, fault)
    assert upstream_flow(emulator, final["flow"]["id"])["state"] == "disabled"

    pause = finish_after_crash(start_gateway, emulator, final, pause_id)
    assert [s["attempts"] for s in pause["steps"]] == [2, 1]
    assert flow_actions(emulator, final["flow"]["id"]) == ["op=disable"]


@pytest.mark.parametrize("failure", [{"failure": "error", "status": 504}, {"failure": "drop"}], ids=["504", "drop"])
def test_a_late_disable_does_not_undo_the_resume_queued_behind_it(
    start_gateway: StartGateway, emulator: EmulatorServer, failure: dict[str, Any]
) -> None:
    """The pause's first action fails at once but Adobe applies it 400 ms later; the retry sends it
    again. The read back waits out the late-commit window of the unanswered attempt, so the resume
    queued behind the pause runs only once the late disable has landed: the flow ends enabled."""
    gateway = start_gateway(**FAST_TAKEOVER)
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    fault = add_fault(emulator, {**ACTION, "mode": "late_commit", "commitAfterMs": 400, "times": 1, **failure})
    with gateway.client() as client:
        pause = mutate(client, activation_id, "pause")
        resume = mutate(client, activation_id, "resume")
        assert (pause.status_code, resume.status_code) == (202, 202), resume.text
        resumed = wait_operation(client, activation_id, operation_id(resume, activation_id))
        paused = get_operation(client, activation_id, operation_id(pause, activation_id))
        after = get_activation(client, activation_id)
    assert (paused["status"], resumed["status"]) == ("succeeded", "succeeded"), (paused, resumed)
    wait_committed(emulator, fault)  # then the flow is as it stays
    assert fault_fired(emulator, fault) == 1 and fault_state(emulator, fault)["committed"] == 1
    assert [s["attempts"] for s in paused["steps"]] == [2, 1]
    assert upstream_flow(emulator, flow_id)["state"] == "enabled"
    assert (after["revision"], after["appliedRevision"], after["state"]) == (3, 3, "enabled")
    assert after["sync"]["status"] == "in_sync"
    actions = flow_actions(emulator, flow_id)
    assert actions[-1] == "op=enable" and actions.count("op=enable") == 1, actions
    applied = [e for e in action_history(emulator, flow_id) if e["lateCommitOf"] is not None]
    enable = next(e for e in action_history(emulator, flow_id) if e["query"] == "op=enable")
    assert len(applied) == 1 and applied[0]["time"] < enable["time"], "the late disable landed first"


def action_history(emulator: EmulatorServer, flow_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in flow_service_requests(emulator)
        if e["method"] == "POST" and e["path"].endswith(f"/flows/{flow_id}/action")
    ]
