"""The README's first command on a machine with nothing but Python: no DATABASE_URL, no Adobe
credentials. The service starts an embedded PostgreSQL and the built-in emulator, and the README's
walk-through activates two segments and two attributes to Adobe Campaign."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.conftest import wait_terminal
from tests.support.gateway import GatewayProcess
from tests.support.payloads import s3_request

CONFIG = (
    "DATABASE_URL",
    "FLOW_SERVICE_URL",
    "IMS_TOKEN_URL",
    "ADOBE_CLIENT_ID",
    "ADOBE_CLIENT_SECRET",
    "ADOBE_ORG_ID",
    "SECRETS_KEY",
    "API_KEYS",
    "DEV_MODE",
)


def test_default_run_uses_embedded_postgres_and_the_emulator(tmp_path: Path) -> None:
    process = GatewayProcess({"DATA_DIR": str(tmp_path / "data")}, log_path=tmp_path / "serve.log", unset=CONFIG)
    process.start()
    try:
        with process.client() as client:
            ready = client.get("/health/ready")
            assert ready.status_code == 200
            assert ready.headers["content-type"] == "application/health+json"
            endpoint = ready.json()["checks"]["flowservice:endpoint"][0]
            assert endpoint["output"] == "built-in emulator"
            assert any("emulator" in note for note in ready.json()["notes"])
            body = s3_request()
            accepted = client.post("/activations", json=body, headers={"Idempotency-Key": "walkthrough-1"})
            assert accepted.status_code == 202
            final = wait_terminal(client, accepted.json()["id"])
        assert final["status"] == "succeeded", final
        emulator_url = endpoint["observedValue"].split("/data/foundation")[0]
        state = httpx.get(f"{emulator_url}/_emulator/state").json()
        counts = {
            kind: len(state["resources"].get(kind, {}).get("prod", []))
            for kind in ("connections", "sourceConnections", "targetConnections", "flows")
        }
        assert counts == {"connections": 2, "sourceConnections": 1, "targetConnections": 1, "flows": 1}
        flow = state["resources"]["flows"]["prod"][0]
        params = flow["transformations"][0]["params"]
        assert len(params["segmentSelectors"]["selectors"]) == 2
        assert len(params["profileSelectors"]["selectors"]) == 2
        assert "emulator" in process.logs()
        assert (tmp_path / "data" / "postgres" / "PG_VERSION").exists(), "the embedded server keeps its files there"
    finally:
        process.stop()
    # Data survives a restart of the embedded database.
    again = GatewayProcess({"DATA_DIR": str(tmp_path / "data")}, log_path=tmp_path / "serve2.log", unset=CONFIG)
    again.start()
    try:
        with again.client() as client:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                listed = client.get("/activations").json()["items"]
                if listed:
                    break
            assert [a["id"] for a in listed] == [final["id"]]
    finally:
        again.stop()
