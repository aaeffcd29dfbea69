"""SFTP_ALLOWED_HOSTS (defect 10): an operator may allow SFTP hosts that are refused by default
because Adobe would reach them inside its own network (private, loopback, link-local and other
special-purpose addresses, local names). The list only makes exceptions, and a bad entry stops the
process before it serves anything."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import gateway_env, wait_terminal
from tests.security.support import assert_problem, flow_service_calls
from tests.security.test_startup import run_until_exit
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, sftp_password_request

StartGateway = Callable[..., GatewayProcess]


def target_hosts(emulator: EmulatorServer, activation_ids: set[str]) -> list[str]:
    """The SFTP hosts of the target base connections Adobe (the emulator) was asked to create for
    these activations (the emulator is shared: another test's gateway may still be finishing)."""
    return [
        call["body"]["auth"]["params"]["host"]
        for call in flow_service_calls(emulator)
        if call["method"] == "POST"
        and call["path"].endswith("/connections")
        and (call.get("body") or {}).get("auth")
        and any(f"[ag:{i}]" in str(call["body"].get("name")) for i in activation_ids)
    ]


def test_allowed_private_hosts_are_accepted_and_others_still_refused(
    start_gateway: StartGateway, emulator: EmulatorServer
) -> None:
    gateway = start_gateway(SFTP_ALLOWED_HOSTS="sftp.internal, 10.20.0.0/16,fd00:20::/32")
    with gateway.client() as client:
        accepted = {}
        for host in ("10.20.3.4", "sftp.internal", "[fd00:20::7]", "::ffff:10.20.0.9"):
            response = client.post(
                "/activations",
                json={**sftp_password_request(), "storage": {**_storage(), "host": host}},
                headers={"Idempotency-Key": new_key()},
            )
            assert response.status_code == 202, (host, response.text)
            accepted[host] = wait_terminal(client, response.json()["id"])
        for host in ("10.21.0.1", "sftp.other.internal", "127.0.0.1", "169.254.169.254"):
            response = client.post(
                "/activations",
                json={**sftp_password_request(), "storage": {**_storage(), "host": host}},
                headers={"Idempotency-Key": new_key()},
            )
            body = assert_problem(response, 422, "validation-error", "/storage/host")
            assert "SFTP_ALLOWED_HOSTS" in body["errors"][0]["message"], body
    for host, final in accepted.items():
        assert final["status"] == "succeeded", final
        assert final["storage"]["host"] == host.strip("[]"), "an IPv6 address is kept and sent without brackets"
    ids = {final["id"] for final in accepted.values()}
    assert target_hosts(emulator, ids) == ["10.20.3.4", "sftp.internal", "fd00:20::7", "::ffff:10.20.0.9"]


def _storage() -> dict[str, object]:
    storage: dict[str, object] = sftp_password_request()["storage"]
    return storage


@pytest.mark.parametrize("entry", ["10.0.0.0/33", "sftp.example.com:22", "[sftp.internal]", "0x7f000001"])
def test_a_malformed_entry_stops_the_process_at_startup(
    database_url: str, emulator: EmulatorServer, tmp_path: Path, entry: str
) -> None:
    code, logs = run_until_exit(
        gateway_env(database_url, emulator, SFTP_ALLOWED_HOSTS=f"sftp.internal,{entry}"), tmp_path
    )
    assert code != 0, logs
    assert "sftp_allowed_hosts" in logs.lower() and "neither a host name nor an IP address" in logs, logs
    assert "serving" not in logs
