"""Acceptance 4 and contract §6: caller API keys (made by the CLI, stored as hashes), every
/activations endpoint refusing a missing or wrong key with 401, and each client seeing only its own
activations, events, rollbacks and Idempotency-Keys."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
from collections.abc import Callable

import httpx
import pytest

from app.cli import build_parser
from tests.conftest import wait_terminal
from tests.security.support import assert_problem, dump_database
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

StartGateway = Callable[..., GatewayProcess]


def create_api_key(client: str) -> tuple[str, str]:
    """Runs `activation-gateway create-api-key` (in process: it only prints); returns (the key, the
    API_KEYS entry) it printed."""
    args = build_parser().parse_args(["create-api-key", client])
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        args.handler(args)
    lines = [line.strip() for line in output.getvalue().splitlines() if line.strip()]
    entry = next(line for line in lines if line.startswith(f"{client}:"))
    shown_once = next(i for i, line in enumerate(lines) if "shown once" in line)
    key = lines[shown_once + 1]
    assert re.fullmatch(rf"{re.escape(client)}:[0-9a-f]{{64}}", entry), output.getvalue()
    assert entry == f"{client}:{hashlib.sha256(key.encode()).hexdigest()}", "the entry is the key's SHA-256"
    assert key not in entry and len(key) >= 32
    return key, entry


@pytest.fixture
def keys() -> dict[str, tuple[str, str]]:
    return {client: create_api_key(client) for client in ("alice", "bob")}


@pytest.fixture
def secured(start_gateway: StartGateway, keys: dict[str, tuple[str, str]]) -> GatewayProcess:
    """A production-mode gateway: DEV_MODE=false, two clients."""
    return start_gateway(DEV_MODE="false", API_KEYS=",".join(entry for _, entry in keys.values()))


def as_client(gateway: GatewayProcess, key: str) -> httpx.Client:
    return gateway.client(headers={"Authorization": f"Bearer {key}"})


def test_create_api_key_prints_the_key_once_and_the_line_to_configure(keys: dict[str, tuple[str, str]]) -> None:
    alice_key, alice_entry = keys["alice"]
    again_key, again_entry = create_api_key("alice")
    assert again_key != alice_key and again_entry != alice_entry  # a fresh random key every time


ENDPOINTS = [
    ("POST", "/activations"),
    ("GET", "/activations"),
    ("GET", "/activations/{id}"),
    ("GET", "/activations/{id}/events"),
    ("POST", "/activations/{id}/rollback"),
]


def test_every_endpoint_needs_a_valid_key(secured: GatewayProcess, keys: dict[str, tuple[str, str]]) -> None:
    with as_client(secured, keys["alice"][0]) as alice:
        created = alice.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        assert created.status_code == 202, created.text
    activation_id = created.json()["id"]
    wrong = [
        None,
        "Bearer wrong",
        f"Basic {keys['alice'][0]}",
        f"Bearer {keys['alice'][1]}",  # the configured hash entry is not a key
        f"Bearer {keys['alice'][1].split(':')[1]}",  # nor is the hash alone
    ]
    with secured.client() as anonymous:
        for method, template in ENDPOINTS:
            for authorization in wrong:
                headers = {"Idempotency-Key": new_key()}
                if authorization is not None:
                    headers["Authorization"] = authorization
                response = anonymous.request(
                    method, template.format(id=activation_id), json=s3_request(), headers=headers
                )
                assert_problem(response, 401, "unauthorized")
                assert response.headers["www-authenticate"] == "Bearer", (method, template)
    # Without a key nothing was created and nothing was rolled back.
    with as_client(secured, keys["alice"][0]) as alice:
        assert len(alice.get("/activations").json()["items"]) == 1
        assert alice.get(f"/activations/{activation_id}").json()["status"] != "rolling_back"


def test_clients_cannot_see_or_touch_each_others_activations(
    secured: GatewayProcess, keys: dict[str, tuple[str, str]], isolated_database: str
) -> None:
    body = s3_request()
    with as_client(secured, keys["alice"][0]) as alice, as_client(secured, keys["bob"][0]) as bob:
        created = alice.post("/activations", json=body, headers={"Idempotency-Key": "shared-key-1"})
        assert created.status_code == 202, created.text
        activation_id = created.json()["id"]
        wait_terminal(alice, activation_id)

        for method, path in (
            ("GET", f"/activations/{activation_id}"),
            ("GET", f"/activations/{activation_id}/events"),
            ("POST", f"/activations/{activation_id}/rollback"),
        ):
            assert_problem(bob.request(method, path), 404, "not-found")
        assert bob.get("/activations").json()["items"] == []
        assert bob.get("/activations", params={"destination": "Adobe Campaign"}).json()["items"] == []

        # An equal Idempotency-Key from another client is a different key: a new activation, no
        # replay (and no "reused with a different body" either, whatever bob sends).
        same = bob.post("/activations", json=body, headers={"Idempotency-Key": "shared-key-1"})
        assert same.status_code == 202, same.text
        assert same.json()["id"] != activation_id
        assert "idempotent-replayed" not in same.headers
        other = s3_request()
        different = bob.post("/activations", json=other, headers={"Idempotency-Key": "shared-key-2"})
        assert different.status_code == 202
        replay = alice.post("/activations", json=other, headers={"Idempotency-Key": "shared-key-2"})
        assert replay.status_code == 202 and replay.json()["id"] != different.json()["id"]

        # The owner still sees exactly its own, untouched by bob's rollback attempt.
        mine = alice.get(f"/activations/{activation_id}").json()
        assert mine["status"] == "succeeded"
        assert {a["id"] for a in alice.get("/activations").json()["items"]} == {
            activation_id,
            replay.json()["id"],
        }
        assert alice.get(f"/activations/{activation_id}/events").status_code == 200
        # And alice's replay of her own key still works.
        again = alice.post("/activations", json=body, headers={"Idempotency-Key": "shared-key-1"})
        assert again.headers.get("idempotent-replayed") == "true" and again.json()["id"] == activation_id

    # Keys are stored hashed: neither raw key appears anywhere in the database.
    dump = dump_database(isolated_database)
    for key, _ in keys.values():
        assert key not in dump


def test_development_mode_still_refuses_a_bad_key(gateway: GatewayProcess) -> None:
    with gateway.client() as client:
        assert client.get("/activations").status_code == 200  # no header: the built-in client 'dev'
        response = client.get("/activations", headers={"Authorization": "Bearer guess"})
    assert_problem(response, 401, "unauthorized")


def test_a_configured_key_works_alongside_development_mode(
    start_gateway: StartGateway, keys: dict[str, tuple[str, str]]
) -> None:
    gateway = start_gateway(DEV_MODE="true", API_KEYS=keys["alice"][1])
    with as_client(gateway, keys["alice"][0]) as alice, gateway.client() as dev:
        created = alice.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        assert created.status_code == 202
        # The anonymous development client is a client like any other: it does not see alice's work.
        assert_problem(dev.get(f"/activations/{created.json()['id']}"), 404, "not-found")
        assert dev.get("/activations").json()["items"] == []
