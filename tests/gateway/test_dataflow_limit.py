"""Adobe's dataflow limit per sandbox as a guardrail (DATAFLOW_LIMIT_PER_SANDBOX): a gateway with a
limit of 3 takes three creates in a sandbox, refuses the fourth (and its dry run) with `409
dataflow-limit-reached` writing nothing, still answers a replay and other sandboxes, and takes a
create again once one was retired and the count (cached DATAFLOW_COUNT_TTL_SECONDS) was read again.
A count that cannot be read blocks nothing."""

from __future__ import annotations

import concurrent.futures
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import emulator_state
from tests.gateway.test_faults import add_fault
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

LIMIT = 3
TTL_SECONDS = 1.0
LIMIT_REACHED = "urn:activation-gateway:problem:dataflow-limit-reached"


def limited_gateway(start_gateway: Callable[..., GatewayProcess], **env: str) -> GatewayProcess:
    settings = {"DATAFLOW_LIMIT_PER_SANDBOX": str(LIMIT), "DATAFLOW_COUNT_TTL_SECONDS": str(TTL_SECONDS)}
    return start_gateway(**{**settings, **env})


def create(client: httpx.Client, body: dict[str, Any], key: str | None = None, wait: bool = True) -> httpx.Response:
    headers = {"Idempotency-Key": key or new_key()}
    if wait:
        headers["Prefer"] = "wait=30"
    return client.post("/activations", json=body, headers=headers)


def dry_run(client: httpx.Client, body: dict[str, Any]) -> httpx.Response:
    return client.post("/activations", json=body, params={"dryRun": "true"})


def wait_until_dry_runs_pass(client: httpx.Client) -> None:
    """Until the count is read again: the first create after it expired is still counted by it."""
    wait_for(lambda: {"status": dry_run(client, s3_request()).status_code}, lambda r: r["status"] == 200, timeout=10)


def creators_upstream(emulator: EmulatorServer) -> set[str]:
    """The activations that created something upstream, from the names of what the emulator holds."""
    resources = emulator_state(emulator)["resources"]
    names = [str(r.get("name", "")) for kind in resources.values() for items in kind.values() for r in items]
    return {found[1] for name in names if (found := re.search(r"\[ag:([0-9a-f-]{36})\]$", name))}


def destination_flows(emulator: EmulatorServer, sandbox: str = "prod") -> int:
    return len(emulator_state(emulator)["resources"].get("flows", {}).get(sandbox, []))


def assert_limit_reached(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"] == LIMIT_REACHED
    detail = problem["detail"]
    # A create that got its flow while the count was read is counted twice (never missed): at least.
    counted = re.search(r"sandbox prod has (\d+) destination dataflows", detail)
    assert counted is not None and int(counted[1]) >= LIMIT and f"limit is {LIMIT}" in detail, detail
    assert "PATCH /activations/{id}" in detail, "the caller is told to update instead"


def test_the_limit_refuses_creates_past_it_until_one_is_retired(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    gateway = limited_gateway(start_gateway)
    client = gateway.client()
    keys = [new_key() for _ in range(LIMIT)]
    created = [create(client, s3_request(), key) for key in keys[:-1]]
    # The last one may still be under way (no flow yet) when the next create is counted.
    created.append(create(client, s3_request(), keys[-1], wait=False))
    assert [r.status_code for r in created] == [200] * (LIMIT - 1) + [202], [r.text for r in created]

    assert_limit_reached(create(client, s3_request()))
    assert_limit_reached(dry_run(client, s3_request()))
    # Nothing was written: no activation; upstream, the resources of the accepted ones alone.
    assert len(client.get("/activations").json()["items"]) == LIMIT
    ids = [r.json()["id"] for r in created]
    for ident in ids:
        assert wait_terminal(client, ident)["status"] == "succeeded"
    assert creators_upstream(emulator) == set(ids)
    assert destination_flows(emulator) == LIMIT

    # Read again from Adobe once the count expired: still at the limit.
    time.sleep(TTL_SECONDS + 0.2)
    assert_limit_reached(create(client, s3_request()))
    other = create(client, s3_request(sandbox="dev"))
    assert other.status_code == 200 and other.json()["status"] == "succeeded", other.text

    # Retire one: once the count was read again, a create goes through.
    retired = client.delete(f"/activations/{ids[0]}", headers={"Idempotency-Key": new_key(), "Prefer": "wait=30"})
    assert retired.status_code in (200, 202), retired.text
    assert wait_terminal(client, ids[0])["status"] == "rolled_back"
    assert destination_flows(emulator) == LIMIT - 1
    wait_until_dry_runs_pass(client)
    again = create(client, s3_request())
    assert again.status_code == 200 and again.json()["status"] == "succeeded", again.text
    assert_limit_reached(create(client, s3_request()))


def test_a_burst_of_concurrent_creates_takes_exactly_the_places_left(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    # A count that does not expire during the burst: the places are the accepted creates alone.
    gateway = limited_gateway(start_gateway, DATAFLOW_COUNT_TTL_SECONDS="60")
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda _: create(gateway.client(), s3_request(), wait=False), range(12)))
    assert sorted(a.status_code for a in answers) == [202] * LIMIT + [409] * (12 - LIMIT), [a.text for a in answers]
    client = gateway.client()
    assert len(client.get("/activations").json()["items"]) == LIMIT
    for answer in answers:
        if answer.status_code == 202:
            assert wait_terminal(client, answer.json()["id"])["status"] == "succeeded"
    assert destination_flows(emulator) == LIMIT


def test_a_replay_at_the_limit_answers_as_before(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    gateway = limited_gateway(start_gateway)
    client = gateway.client()
    body, key = s3_request(), new_key()
    first = create(client, body, key)
    assert first.status_code == 200, first.text
    for _ in range(LIMIT - 1):
        assert create(client, s3_request()).status_code == 200
    assert_limit_reached(create(client, s3_request()))

    replayed = create(client, body, key)
    assert replayed.status_code == 200, replayed.text
    assert replayed.headers["idempotent-replayed"] == "true"
    assert replayed.json()["id"] == first.json()["id"]


def test_creates_under_way_count_before_their_flow_exists(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    # No worker: the accepted creates stay pending, with no flow upstream.
    first = limited_gateway(start_gateway, WORKER_ENABLED="false").client()
    for _ in range(LIMIT):
        assert create(first, s3_request(), wait=False).status_code == 202
    assert_limit_reached(create(first, s3_request(), wait=False))
    # Another process (none of them its own), and the first once its count was read again.
    second = limited_gateway(start_gateway, WORKER_ENABLED="false").client()
    assert_limit_reached(create(second, s3_request(), wait=False))
    time.sleep(TTL_SECONDS + 0.2)
    assert_limit_reached(dry_run(first, s3_request()))
    assert destination_flows(emulator) == 0
    assert len(first.get("/activations").json()["items"]) == LIMIT


def test_a_new_process_counts_adobes_flows_and_an_unreadable_count_blocks_nothing(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    gateway = limited_gateway(start_gateway)
    client = gateway.client()
    for _ in range(LIMIT):
        assert create(client, s3_request()).status_code == 200
    # A new gateway process accepted none of those creates: it counts Adobe's destination flows.
    second = limited_gateway(start_gateway)
    fresh = second.client()
    assert_limit_reached(create(fresh, s3_request()))

    # Adobe cannot list the flows: once the count expired (the stale one serves while it is read
    # again), creates go ahead unchecked (the saga itself never lists /flows).
    add_fault(emulator, {"method": "GET", "path": "/flows", "mode": "error", "status": 503, "times": 100})
    time.sleep(TTL_SECONDS + 0.2)
    wait_until_dry_runs_pass(fresh)
    unchecked = create(fresh, s3_request())
    assert unchecked.status_code == 200 and unchecked.json()["status"] == "succeeded", unchecked.text
    assert destination_flows(emulator) == LIMIT + 1
    assert "dataflow count unreadable" in second.logs()
