"""One activation's log lines, selected by its id, tell its whole story: every step and the request
id of every upstream call (ours, and Adobe's in reply). Every line is JSON with a correlation id."""

from __future__ import annotations

import uuid

from tests.conftest import wait_terminal
from tests.ops.support import json_lines
from tests.support.gateway import GatewayProcess
from tests.support.payloads import s3_request


def test_activation_log_lines_show_every_step_and_upstream_request(gateway: GatewayProcess) -> None:
    correlation = f"ops-logs-{uuid.uuid4().hex[:12]}"
    with gateway.client() as client:
        created = client.post(
            "/activations",
            json=s3_request(),
            headers={"Idempotency-Key": correlation, "X-Request-Id": correlation},
        )
        assert created.status_code == 202
        assert created.headers["x-request-id"] == correlation
        activation_id = created.json()["id"]
        final = wait_terminal(client, activation_id)
        assert final["status"] == "succeeded"
        events = client.get(f"/activations/{activation_id}/events").json()["items"]
        generated = client.get("/health/live").headers["x-request-id"]
    uuid.UUID(generated)  # no X-Request-Id from the caller: one is made up and returned

    entries = json_lines(gateway.logs())
    request_lines = [e for e in entries if e.get("request_id") == correlation]
    assert any(e["event"] == "request" and e["path"] == "/activations" and e["status"] == 202 for e in request_lines)

    mine = [e for e in entries if e.get("activation_id") == activation_id]
    assert mine, "no log line carries the activation id"
    succeeded_steps = {e["step"] for e in mine if e["event"] == "step succeeded"}
    assert succeeded_steps == {step["name"] for step in final["steps"]}

    upstream_lines = [e for e in mine if e["event"] == "upstream call"]
    upstream_events = [e["data"] for e in events if e["type"] == "upstream"]
    assert {e["x_request_id"] for e in upstream_lines} == {e["requestId"] for e in upstream_events}
    assert all(e["adobe_request_id"] for e in upstream_lines), "Adobe's request id is logged with each call"
    # (resolve_destination's spec reads may come from the cache of an earlier activation.)
    assert {e["step"] for e in upstream_lines} == {e["step"] for e in events if e["type"] == "upstream"}
    # Bound from the worker's context, not only passed by hand: the closing line carries it too.
    assert any(e["event"] == "activation processed" for e in mine)
