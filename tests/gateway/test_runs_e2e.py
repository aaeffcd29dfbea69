"""Export runs (contract §12) end to end on the emulator's clock: an activation's scheduled runs
appear in `/runs` with the emulator's counts; a failed run and a run with skipped records show their
reasons; `lastRun` follows; a gateway killed in the middle of mirroring and started again records
every run and every `run` event once."""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for
from tests.gateway.test_activation_e2e import activate, flow_service_requests
from tests.gateway.test_exports_e2e import audience, emulator_runs, runs_of, step_clock
from tests.gateway.test_operations_e2e import events, get_activation
from tests.support.gateway import GatewayProcess
from tests.support.payloads import s3_request

DAY = 86400
# The mirror reads often; the reconcile check stays out of the way.
MIRRORING = {"RUNS_POLL_INTERVAL_SECONDS": "0.5", "RECONCILE_INTERVAL_SECONDS": "3600", "BACKGROUND_LEASE_SECONDS": "3"}


def live_with_runs(gateway: GatewayProcess, count: int = 2) -> dict[str, Any]:
    _, final = activate(gateway, s3_request(segments=[audience(i) for i in range(count)]))
    assert final["status"] == "succeeded", final
    return final


def script_next_runs(emulator: EmulatorServer, flow_id: str, outcome: str, **more: Any) -> None:
    response = httpx.post(f"{emulator.url}/_emulator/flows/{flow_id}/runs/next", json={"outcome": outcome, **more})
    assert response.status_code == 204, response.text


def upstream_of(emulator: EmulatorServer, flow_id: str) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in emulator_runs(emulator) if r["flowId"] == flow_id}


def finished_runs(client: httpx.Client, activation_id: str, count: int) -> list[dict[str, Any]]:
    def done(runs: list[dict[str, Any]]) -> bool:
        return len(runs) == count and all(r["status"] in ("succeeded", "failed") for r in runs)

    return wait_for(lambda: runs_of(client, activation_id, limit=100), done, timeout=30)


def assert_mirrors(run: dict[str, Any], upstream: dict[str, Any]) -> None:
    """The run as the gateway shows it holds what Adobe's run says."""
    metrics = upstream["metrics"]
    records = metrics["recordSummary"]
    assert run["startedAt"] is not None and run["completedAt"] is not None
    assert run["records"]["received"] == records["inputRecordCount"]
    assert run["records"]["exported"] == records["outputRecordCount"]
    assert run["records"]["skipped"] == records["skippedRecordCount"]
    assert run["skippedReasons"] == [
        {"code": i["code"], "message": i["message"], "count": i["count"]} for i in records["skippedInfo"]
    ]
    assert {a["id"]: a["exported"] for a in run["audiences"]} == {
        e["id"].removeprefix("segment:"): e["outputRecordCount"]
        for e in records["targetSummaries"][0]["entitySummaries"]
    }
    assert run["files"] == metrics["fileSummary"]["outputFileCount"]
    assert run["bytes"] == metrics["sizeSummary"]["outputBytes"]
    assert run["errors"] == metrics["statusSummary"]["errors"]


def test_scheduled_runs_appear_with_their_counts_reasons_and_last_run(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    gateway = start_gateway(**MIRRORING)
    client = gateway.client()
    start = live_with_runs(gateway)
    flow_id = start["flow"]["id"]
    assert runs_of(client, start["id"]) == [] and start["lastRun"] is None

    # day 1: a success; the flow exports profile attributes, so some records are skipped
    step_clock(emulator, DAY)
    (first,) = finished_runs(client, start["id"], 1)
    upstream = upstream_of(emulator, flow_id)
    assert first["status"] == "succeeded" and first["trigger"] == "scheduled"
    assert_mirrors(first, upstream[first["id"]])
    assert first["records"]["exported"] > 0
    assert get_activation(client, start["id"])["lastRun"]["id"] == first["id"]

    # day 2: a failure, with Adobe's reason
    script_next_runs(emulator, flow_id, "failed")
    step_clock(emulator, DAY)
    newest, older = finished_runs(client, start["id"], 2)
    assert older["id"] == first["id"]
    assert newest["status"] == "failed" and newest["errors"][0]["code"] == "ACTIVATION_BATCH-0000-FAILED"
    assert_mirrors(newest, upstream_of(emulator, flow_id)[newest["id"]])
    assert get_activation(client, start["id"])["lastRun"]["id"] == newest["id"]

    # day 3: a success that skipped a scripted number of records, each with its reason
    script_next_runs(emulator, flow_id, "success", skippedRecords=17)
    step_clock(emulator, DAY)
    third = finished_runs(client, start["id"], 3)[0]
    assert third["status"] == "succeeded" and third["records"]["skipped"] == 17
    assert third["skippedReasons"] == [
        {"code": "ACTIVATION_BATCH-0000-SKIP", "message": "Records didn't match attribute filter", "count": 17}
    ]
    assert_mirrors(third, upstream_of(emulator, flow_id)[third["id"]])
    assert get_activation(client, start["id"])["lastRun"]["id"] == third["id"]
    assert [r["id"] for r in runs_of(client, start["id"], status="failed")] == [newest["id"]]

    # every finished run has exactly one `run` event
    run_events = Counter(e["data"]["id"] for e in events(client, start["id"]) if e["type"] == "run")
    assert run_events == {first["id"]: 1, newest["id"]: 1, third["id"]: 1}


def test_a_restart_in_the_middle_of_mirroring_duplicates_nothing(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    """The mirror is killed while it reads Adobe's runs (each read held for a second), after it has
    recorded some of them; the next process takes the cycle over once the lease runs out and records
    the rest. No run is listed twice and no run's event is sent twice."""
    first_gateway = start_gateway(**MIRRORING)
    client = first_gateway.client()
    activations = [live_with_runs(first_gateway, count=1) for _ in range(3)]
    step_clock(emulator, 2 * DAY)
    wait_for(lambda: runs_of(client, activations[0]["id"]), lambda runs: len(runs) == 2, timeout=30)
    # reads of unfinished runs and new windows from now on take a second each
    httpx.post(f"{emulator.url}/_emulator/latency", json={"method": "GET", "path": "*/runs", "fixedMs": 1000})
    step_clock(emulator, DAY)
    seen = len(flow_service_requests(emulator))
    wait_for(
        lambda: flow_service_requests(emulator)[seen:],
        lambda calls: any(c["method"] == "GET" and c["path"].endswith("/runs") for c in calls),
        timeout=20,
    )
    first_gateway.signal(signal.SIGKILL)
    httpx.delete(f"{emulator.url}/_emulator/latency").raise_for_status()

    second_gateway = start_gateway(**MIRRORING)
    second = second_gateway.client()
    for activation in activations:
        runs = wait_for(lambda a=activation: runs_of(second, a["id"]), lambda runs: len(runs) == 3, timeout=40)
        upstream = upstream_of(emulator, activation["flow"]["id"])
        assert sorted(r["id"] for r in runs) == sorted(upstream)
        for run in runs:
            assert_mirrors(run, upstream[run["id"]])
        run_events = Counter(e["data"]["id"] for e in events(second, activation["id"]) if e["type"] == "run")
        assert run_events == dict.fromkeys(upstream, 1), run_events


def test_a_run_processing_past_the_threshold_is_reported_once(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    # The emulator's clock was reset for this test, so a run made now starts now on the gateway's
    # clock too: past a 2 s threshold it has been processing "too long".
    gateway = start_gateway(**MIRRORING, RUN_DELAY_THRESHOLD_SECONDS="2")
    client = gateway.client()
    start = live_with_runs(gateway)
    flow_id = start["flow"]["id"]
    script_next_runs(emulator, flow_id, "processing")
    made = httpx.post(f"{emulator.url}/_emulator/flows/{flow_id}/runs", json={})
    assert made.status_code == 201, made.text
    run_id = made.json()["id"]

    def delayed() -> list[dict[str, Any]]:
        return [e for e in events(client, start["id"]) if e["type"] == "run_delayed"]

    (event,) = wait_for(delayed, lambda found: len(found) >= 1, timeout=30)
    assert event["data"]["runId"] == run_id and event["data"]["thresholdSeconds"] == 2
    (run,) = runs_of(client, start["id"])
    assert run["id"] == run_id and run["status"] == "processing"
    # Later cycles read the run again (still processing) and report nothing more.
    since = len(flow_service_requests(emulator))
    wait_for(
        lambda: flow_service_requests(emulator)[since:],
        lambda calls: sum(c["method"] == "GET" and c["path"].endswith("/runs") for c in calls) >= 3,
        timeout=30,
    )
    assert len(delayed()) == 1
    metric = "gateway_export_runs_delayed_total"
    reported = [line for line in client.get("/metrics").text.splitlines() if line.startswith(metric)]
    assert reported and float(reported[0].split()[-1]) == 1.0, reported
