"""Issue #17, point 5: the built-in emulator has a fixed, documented port (EMULATOR_PORT, 8081) that
it never silently leaves, says where it is at start-up, and can keep its resources in DATA_DIR so
that a restarted default run still shows what it created."""

from __future__ import annotations

import socket
import stat
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.cli import prepare_deployment
from app.runtime import ConfigurationError
from app.settings import Settings
from flowservice_emulator import EmulatorConfig, EmulatorServer
from flowservice_emulator.catalog import PROFILE_STORE
from tests.conftest import gateway_env, wait_terminal
from tests.ops.support import json_lines
from tests.support.gateway import GatewayProcess, free_port
from tests.support.payloads import new_key, s3_request

BASE = "/data/foundation/flowservice"
ADOBE = ("FLOW_SERVICE_URL", "IMS_TOKEN_URL", "ADOBE_CLIENT_ID", "ADOBE_CLIENT_SECRET", "ADOBE_ORG_ID")


def emulator_settings(**values: Any) -> Settings:
    """Settings of a default run (no Adobe configuration), whatever this process's environment says."""
    nothing: dict[str, Any] = {"adobe_client_id": None, "flow_service_url": None, "ims_token_url": None}
    return Settings(**{**nothing, **values})


# --------------------------------------------------------------------------- settings
def test_the_emulator_port_defaults_to_8081() -> None:
    assert Settings.model_fields["emulator_port"].default == 8081


@pytest.mark.parametrize(
    ("database_url", "persist", "kept"),
    [
        (None, None, True),  # the default run: the embedded database and the emulator both keep their data
        ("postgresql://db.example/gateway", None, False),  # an external database: the emulator is scratch
        ("postgresql://db.example/gateway", True, True),
        (None, False, False),
    ],
)
def test_persistence_follows_the_embedded_database_unless_set(
    tmp_path: Path, database_url: str | None, persist: bool | None, kept: bool
) -> None:
    settings = emulator_settings(data_dir=tmp_path, database_url=database_url, emulator_persist=persist)
    assert settings.emulator_state_file == (tmp_path / "emulator-state.json" if kept else None)


def test_a_taken_emulator_port_fails_naming_the_setting(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # DATABASE_URL set: nothing else starts before the emulator.
        settings = emulator_settings(
            database_url="postgresql://127.0.0.1:1/unused", data_dir=tmp_path, emulator_port=port
        )
        with pytest.raises(ConfigurationError) as refused:
            prepare_deployment(settings)
    message = str(refused.value)
    assert f"127.0.0.1:{port}" in message and "EMULATOR_PORT" in message, message


# --------------------------------------------------------------------------- the state file
def _token(http: httpx.Client) -> dict[str, str]:
    issued = http.post(
        "/ims/token/v3",
        data={"grant_type": "client_credentials", "client_id": "c", "client_secret": "s", "scope": "openid"},
    )
    issued.raise_for_status()
    return {
        "Authorization": f"Bearer {issued.json()['access_token']}",
        "x-api-key": "c",
        "x-gw-ims-org-id": "0123456789ABCDEF01234567@AdobeOrg",
        "x-sandbox-name": "prod",
    }


def test_the_emulator_keeps_its_resources_in_its_state_file(tmp_path: Path) -> None:
    state_file = tmp_path / "data" / "emulator-state.json"
    config = EmulatorConfig(state_file=state_file)
    body = {"name": "kept", "connectionSpec": {"id": PROFILE_STORE, "version": "1.0"}}
    with EmulatorServer(config) as first, httpx.Client(base_url=first.url, timeout=10) as http:
        created = http.post(f"{BASE}/connections", json=body, headers=_token(http))
        assert created.status_code == 201, created.text
        connection_id = created.json()["id"]
    assert state_file.exists()
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600, "auth params may hold secrets: owner only"

    with EmulatorServer(config) as second, httpx.Client(base_url=second.url, timeout=10) as http:
        headers = _token(http)  # tokens are not kept: a caller gets a new one, as after Adobe's expiry
        again = http.get(f"{BASE}/connections/{connection_id}", headers=headers)
        assert again.status_code == 200, again.text
        assert again.json()["items"][0]["name"] == "kept"
        # Deleting is a change too: a third start finds nothing.
        assert http.delete(f"{BASE}/connections/{connection_id}", headers=headers).status_code == 202
    with EmulatorServer(config) as third, httpx.Client(base_url=third.url, timeout=10) as http:
        assert http.get(f"{BASE}/connections/{connection_id}", headers=_token(http)).status_code == 404

    with EmulatorServer() as memory_only, httpx.Client(base_url=memory_only.url, timeout=10) as http:
        assert http.get(f"{BASE}/connections/{connection_id}", headers=_token(http)).status_code == 404


def test_an_unreadable_state_file_is_refused_by_name(tmp_path: Path) -> None:
    state_file = tmp_path / "emulator-state.json"
    state_file.write_text("{not json")
    settings = emulator_settings(
        database_url="postgresql://127.0.0.1:1/unused", data_dir=tmp_path, emulator_port=0, emulator_persist=True
    )
    with pytest.raises(ConfigurationError, match=r"emulator-state\.json"):
        prepare_deployment(settings)


# --------------------------------------------------------------------------- the default run
def test_a_restarted_default_run_shows_its_emulator_and_what_it_created(
    isolated_database: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    port = free_port()
    emulator_url = f"http://127.0.0.1:{port}"
    # The Adobe settings are unset: the gateway starts its built-in emulator, on EMULATOR_PORT, with
    # its state in DATA_DIR (kept because EMULATOR_PERSIST says so: the database is external here).
    env = gateway_env(isolated_database, emulator, DATA_DIR=str(tmp_path / "data"), EMULATOR_PORT=str(port))
    env.update(EMULATOR_PERSIST="true", LOG_LEVEL="INFO")

    first = GatewayProcess(env, log_path=tmp_path / "first.log", unset=ADOBE).start()
    try:
        banner = next(e for e in json_lines(first.logs()) if e["event"] == "serving")
        assert banner["emulator"] == emulator_url and banner["docs"] == f"{first.url}/docs", banner
        with first.client() as client:
            assert client.get("/docs").status_code == 200
            endpoint = client.get("/health/ready").json()["checks"]["flowservice:endpoint"][0]
            assert endpoint["observedValue"].startswith(emulator_url), endpoint
            accepted = client.post(
                "/activations",
                json=s3_request(name=f"kept {uuid.uuid4().hex[:6]}"),
                headers={"Idempotency-Key": new_key()},
            )
            assert accepted.status_code == 202, accepted.text
            final = wait_terminal(client, accepted.json()["id"])
        assert final["status"] == "succeeded", final
    finally:
        first.stop()
    assert (tmp_path / "data" / "emulator-state.json").exists()

    again = GatewayProcess(env, log_path=tmp_path / "again.log", unset=ADOBE).start()
    try:
        state = httpx.get(f"{emulator_url}/_emulator/state").json()
        flows = state["resources"]["flows"]["prod"]
        assert [flow["id"] for flow in flows] == [final["flow"]["id"]], "the restarted emulator still has the flow"
        with again.client() as client:  # and the gateway can still act on it: roll it back
            assert client.post(f"/activations/{final['id']}/rollback").status_code == 202
            assert wait_terminal(client, final["id"])["status"] == "rolled_back"
    finally:
        again.stop()
