"""SIGKILL at every boundary of the export operation's one step (start_export), with real
processes: before Adobe's answer to the ad-hoc call (never applied), after Adobe started the job but
before the local commit, while a call that Adobe commits late is unanswered, and right after the
local commit. A second process takes over and ends the export succeeded, naming the one job that
Adobe runs: never a second one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for
from tests.gateway.test_crash_points import FAST_TAKEOVER, fired
from tests.gateway.test_exports_e2e import adhoc_calls, export, live_for_export, upstream_runs
from tests.gateway.test_faults import add_fault
from tests.gateway.test_late_commit import wait_committed
from tests.gateway.test_operations_e2e import get_operation, kinds, operation_id, wait_operation
from tests.support.gateway import GatewayProcess

StartGateway = Callable[..., GatewayProcess]
HELD = {"failure": "timeout", "holdMs": 60000}  # far longer than the test: the gateway is killed while it waits
ADHOC_CALL = {"method": "POST", "path": "*/adhocrun"}


def start_export(
    start_gateway: StartGateway, emulator: EmulatorServer, rule: dict[str, Any] | None
) -> tuple[GatewayProcess, dict[str, Any], str, str]:
    """A live activation on a first process, then an export under the fault ``rule`` (returns once it
    fired: the emulator holds the call), or with none (returns once the export ended)."""
    first = start_gateway(**FAST_TAKEOVER)
    final = live_for_export(first, emulator)
    fault = add_fault(emulator, {"times": 1, **ADHOC_CALL, **rule}) if rule is not None else ""
    with first.client() as client:
        accepted = export(client, final["id"], wait=None)
        assert accepted.status_code == 202, accepted.text
        export_id = operation_id(accepted, final["id"])
        if rule is not None:
            wait_for(lambda: {"fired": fired(emulator, fault)}, lambda r: r["fired"], timeout=30)
            step = get_operation(client, final["id"], export_id)["steps"][0]
            assert (step["status"], step["attempts"]) == ("running", 1)
        else:
            wait_operation(client, final["id"], export_id)
    return first, final, export_id, fault


def finish_after_crash(
    start_gateway: StartGateway, emulator: EmulatorServer, final: dict[str, Any], export_id: str
) -> dict[str, Any]:
    """A second process ends the export: succeeded, naming the one run Adobe has for the flow."""
    httpx.delete(f"{emulator.url}/_emulator/faults").raise_for_status()
    second = start_gateway(**FAST_TAKEOVER)
    with second.client() as client:
        operation = wait_operation(client, final["id"], export_id, timeout=60)
        assert operation["status"] == "succeeded", operation
        assert kinds(client, final["id"]) == ["export", "create"], "exactly one export operation"
    (upstream,) = upstream_runs(emulator, final["flow"]["id"])
    (named,) = operation["result"]["runs"]
    assert named["id"] == upstream["id"] and named["segments"] == [s["id"] for s in final["segments"]]
    return operation


def test_kill_before_adobes_answer_the_call_never_applied(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    first, final, export_id, _ = start_export(
        start_gateway, emulator, {"mode": "late_commit", "commitAfterMs": 600000, **HELD}
    )
    first.kill()
    assert httpx.delete(f"{emulator.url}/_emulator/lateCommits").json()["cancelled"] == 1
    assert upstream_runs(emulator, final["flow"]["id"]) == []
    operation = finish_after_crash(start_gateway, emulator, final, export_id)
    assert operation["steps"][0]["attempts"] == 2
    assert len(adhoc_calls(emulator)) == 2, "the lost call and the takeover's"


def test_kill_after_adobe_started_the_job_before_the_local_commit(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    first, final, export_id, _ = start_export(start_gateway, emulator, {"mode": "commit_then_fail", **HELD})
    first.kill()
    operation = finish_after_crash(start_gateway, emulator, final, export_id)
    assert operation["steps"][0]["attempts"] == 2
    # the takeover found the job among the flow's runs since the first attempt and sent nothing again
    assert len(adhoc_calls(emulator)) == 1


def test_kill_while_a_call_that_commits_late_is_unanswered(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    # Adobe starts the job 400 ms after the call arrived (within the 0.5 s late-commit window), while
    # no gateway runs: the takeover waits that window out, finds the job and adopts it.
    first, final, export_id, fault = start_export(
        start_gateway, emulator, {"mode": "late_commit", "commitAfterMs": 400, **HELD}
    )
    first.kill()
    wait_committed(emulator, fault)
    operation = finish_after_crash(start_gateway, emulator, final, export_id)
    assert operation["steps"][0]["attempts"] == 2
    assert [e["lateCommitOf"] is None for e in adhoc_calls(emulator)] == [True, False]


def test_kill_right_after_the_local_commit(start_gateway: StartGateway, emulator: EmulatorServer) -> None:
    first, final, export_id, _ = start_export(start_gateway, emulator, None)
    first.kill()
    operation = finish_after_crash(start_gateway, emulator, final, export_id)
    assert operation["steps"][0]["attempts"] == 1, "a committed step is not run again"
    assert len(adhoc_calls(emulator)) == 1
