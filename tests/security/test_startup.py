"""Development mode and the refusals outside it (contract §6, §8): a real `serve` process either
refuses to start, with exit status 2 and a message naming the setting, or starts and says loudly that
it runs in development mode."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import gateway_env
from tests.support.gateway import GatewayProcess

ALICE = "alice:" + "ab" * 32


def run_until_exit(env: dict[str, str], tmp_path: Path, unset: tuple[str, ...] = ()) -> tuple[int, str]:
    process = GatewayProcess(env, log_path=tmp_path / "refused.log", unset=unset)
    process.start(wait=False)
    assert process.process is not None
    try:
        code = process.process.wait(timeout=60)
    finally:
        process.kill()
    return code, process.logs()


@pytest.mark.parametrize(
    ("overrides", "unset", "message"),
    [
        # DATABASE_URL set and DEV_MODE unset: production mode, which needs caller keys.
        ({}, ("DEV_MODE", "API_KEYS"), "API_KEYS is required outside development mode (DATABASE_URL is set"),
        ({"DEV_MODE": "false"}, ("API_KEYS",), "API_KEYS is required outside development mode"),
        ({"DEV_MODE": "false", "API_KEYS": ALICE}, ("SECRETS_KEY",), "SECRETS_KEY is required outside development"),
        ({"DEV_MODE": "false", "API_KEYS": ALICE, "SECRETS_KEY": "not-a-fernet-key"}, (), "Fernet keys"),
        ({"DEV_MODE": "false", "API_KEYS": "alice:short"}, (), "API_KEYS entries must be client:sha256hex"),
        ({"ADOBE_CA_BUNDLE": "/nonexistent/ca.pem"}, (), "ADOBE_CA_BUNDLE"),
    ],
    ids=["no-keys-external-db", "no-keys-dev-off", "no-secrets-key", "bad-secrets-key", "bad-api-keys", "ca-bundle"],
)
def test_unsafe_configuration_is_refused(
    database_url: str,
    emulator: EmulatorServer,
    tmp_path: Path,
    overrides: dict[str, str],
    unset: tuple[str, ...],
    message: str,
) -> None:
    env = gateway_env(database_url, emulator, **overrides)
    for name in unset:
        env.pop(name, None)
    code, logs = run_until_exit(env, tmp_path, unset=unset)
    assert code == 2, logs
    assert "configuration error" in logs and message in logs, logs
    assert "Traceback" not in logs
    # The refusal comes before anything starts: no server was ever listening.
    assert "serving" not in logs


def test_forced_development_mode_on_an_external_database_is_loud(
    database_url: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    process = GatewayProcess(
        gateway_env(database_url, emulator, DEV_MODE="true"), log_path=tmp_path / "forced.log", unset=("API_KEYS",)
    )
    process.start()
    try:
        ready = httpx.get(f"{process.url}/health/ready").json()
        assert any("development mode FORCED by DEV_MODE=true" in note for note in ready["notes"]), ready
        assert httpx.get(f"{process.url}/activations").status_code == 200  # acts as 'dev'
    finally:
        process.kill()  # the warning was logged at start-up; no need to wait for a graceful drain
    warnings = [line for line in process.logs().splitlines() if "development mode FORCED" in line]
    assert warnings and all('"level": "warning"' in line for line in warnings), process.logs()[-2000:]


def test_production_mode_starts_with_keys_and_secrets_key(
    database_url: str, emulator: EmulatorServer, tmp_path: Path
) -> None:
    env = gateway_env(database_url, emulator, API_KEYS=ALICE)
    env.pop("DEV_MODE")
    process = GatewayProcess(env, log_path=tmp_path / "prod.log", unset=("DEV_MODE",))
    process.start()
    try:
        ready = httpx.get(f"{process.url}/health/ready").json()
        assert not any("development mode" in note for note in ready.get("notes", []))
        assert httpx.get(f"{process.url}/activations").status_code == 401
    finally:
        process.kill()
    assert "development mode" not in process.logs()
