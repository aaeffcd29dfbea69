"""Adobe's error text that PostgreSQL cannot store (part of defect 4).

jsonb refuses NUL and lone surrogates. An error message holding either used to crash the saga
when it recorded the failure; the activation was claimed again and again, and each run sent the
create once more. The text is now cleaned when the error is read, so the failure is recorded and
compensated like any other."""

from __future__ import annotations

import json

import httpx

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_terminal
from tests.security.support import flow_service_calls
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request


def add_raw_fault(emulator: EmulatorServer, rule: dict[str, object]) -> None:
    # json.dumps escapes the lone surrogate (ensure_ascii); httpx's json= would refuse to encode it.
    response = httpx.post(
        f"{emulator.url}/_emulator/faults",
        content=json.dumps(rule).encode(),
        headers={"Content-Type": "application/json"},
    )
    response.raise_for_status()


def test_an_error_message_with_nul_and_a_lone_surrogate_is_recorded_cleaned(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    poison = "poison\u0000text \ud800 end"
    add_raw_fault(
        emulator, {"method": "POST", "path": "/flows", "status": 400, "times": 1, "body": {"message": poison}}
    )
    with gateway.client() as client:
        accepted = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        assert accepted.status_code == 202, accepted.text
        final = wait_terminal(client, accepted.json()["id"])

    assert final["status"] == "rolled_back", final
    error = final["error"]
    assert error["step"] == "create_flow" and error["upstreamStatus"] == 400, error
    assert error["upstreamMessage"] == "poisontext \ufffd end", error
    flow_step = next(step for step in final["steps"] if step["name"] == "create_flow")
    assert flow_step["error"]["upstreamMessage"] == "poisontext \ufffd end", flow_step
    creates = [c for c in flow_service_calls(emulator) if c["method"] == "POST" and c["path"].endswith("/flows")]
    assert len(creates) == 1, f"the create was sent {len(creates)} times"
