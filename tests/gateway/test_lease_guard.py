"""The lease is checked right before every request that leaves the process, not once per logical
call: a worker paused inside a call (here while it refreshes its IMS token after a 401) must not
send the retried request once another worker has taken the activation over and finished it."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Any

import httpx

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import BASE, assert_one_of_each
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

FLOWS = f"{BASE}/flows"
IMS_TOKEN = "/ims/token/v3"
# Long upstream timeout: the slow token request must be answered, not time out, while A is stopped.
TAKEOVER = {"LEASE_SECONDS": "2", "UPSTREAM_TIMEOUT_SECONDS": "30", "SHUTDOWN_DELAY_SECONDS": "0"}


def history(emulator: EmulatorServer) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = httpx.get(f"{emulator.url}/_emulator/requests").json()["items"]
    return items


def sent_by(process: GatewayProcess, entry: dict[str, Any]) -> bool:
    assert process.process is not None
    return f":{process.process.pid}:" in entry["headers"].get("user-agent", "")


def flow_posts(emulator: EmulatorServer, process: GatewayProcess, activation_id: str) -> list[int | None]:
    """The statuses of the POST /flows ``process`` sent for the activation (its id is in the flow's name)."""
    return [
        e["status"]
        for e in history(emulator)
        if e["method"] == "POST" and e["path"] == FLOWS and sent_by(process, e) and activation_id in str(e["body"])
    ]


def test_a_worker_paused_during_a_token_refresh_does_not_resend_after_losing_its_lease(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    first = start_gateway(**TAKEOVER)
    with first.client() as client:
        # A first activation gets A its token; from now on a refresh takes 3 s, long enough to stop A in it.
        warm_up = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()}).json()
        assert wait_terminal(client, warm_up["id"])["status"] == "succeeded"
        latency = {"method": "POST", "path": IMS_TOKEN, "fixedMs": 3000}
        httpx.post(f"{emulator.url}/_emulator/latency", json=latency).raise_for_status()
        refused = {"method": "POST", "path": "/flows", "status": 401, "times": 1}
        httpx.post(f"{emulator.url}/_emulator/faults", json=refused).raise_for_status()
        activation_id = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()}).json()[
            "id"
        ]
    wait_for(lambda: {"posts": flow_posts(emulator, first, activation_id)}, lambda r: 401 in r["posts"])
    first.signal(signal.SIGSTOP)  # A has invalidated its token and waits for the new one
    try:
        second = start_gateway(**TAKEOVER)
        with second.client() as client:
            final = wait_terminal(client, activation_id, timeout=60)
        assert final["status"] == "succeeded", final
    finally:
        httpx.delete(f"{emulator.url}/_emulator/latency").raise_for_status()
        first.signal(signal.SIGCONT)
    time.sleep(4)  # A gets its token and would resend the POST it was refused
    assert flow_posts(emulator, first, activation_id) == [401], "A resent the refused POST /flows after it resumed"
    assert_one_of_each(emulator, activation_id)
    assert "lease" in first.logs()
