"""GET /destinations and the early catalog check of POST /activations (contract §15), over real HTTP
against the emulator: what the catalog cannot take is refused with 422 before anything is created;
only while the catalog cannot be read is a request accepted unchecked, for the saga to resolve."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest

from app.domain.catalog import Destination, DestinationCatalog, check_choice
from app.domain.errors import StepFailed
from flowservice_emulator import EmulatorServer
from flowservice_emulator.catalog import (
    ADOBE_CAMPAIGN,
    ORACLE_ELOQUA,
    ORACLE_RESPONSYS,
    PROFILE_STORE,
    SFTP_LEGACY,
    Catalog,
)
from tests.conftest import wait_terminal
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request, sftp_password_request, sftp_ssh_request

EMAIL_MARKETING = ["Adobe Campaign", "Oracle Eloqua", "Oracle Responsys", "Salesforce Marketing Cloud"]
CATALOG_DOWN = {"method": "GET", "path": "/connectionSpecs", "status": 503, "times": 1000}


def expected_from_the_emulator() -> list[dict[str, Any]]:
    """The batch (file-based) email-marketing destinations of the emulator's catalog, from its own specs."""
    catalog = Catalog()
    flows = catalog.flow_specs()
    items = []
    for spec in catalog.connection_specs():
        attributes = spec.get("attributes", {})
        if attributes.get("category") != "emailMarketing" or attributes.get("exportType") != "batch":
            continue  # (a streaming email destination, Marketo, is not activated through files)
        auth = {a["name"] for a in spec["authSpec"]}
        flow = next(
            f
            for f in flows
            if PROFILE_STORE in f["sourceConnectionSpecIds"] and spec["id"] in f["targetConnectionSpecIds"]
        )
        items.append(
            {
                "name": spec["name"],
                "connectionSpecId": spec["id"],
                "flowSpecId": flow["id"],
                "storage": [kind for kind, name in (("s3", "S3"), ("sftp", "SFTP with Password")) if name in auth],
                "sftpAuth": [
                    method
                    for method, name in (("password", "SFTP with Password"), ("sshKey", "SFTP with SSH Key"))
                    if name in auth
                ],
            }
        )
    return sorted(items, key=lambda item: item["name"])


def activation_count(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        activations = conn.execute("SELECT count(*) FROM activations").fetchone()
        keys = conn.execute("SELECT count(*) FROM idempotency_keys").fetchone()
    assert activations is not None and keys is not None
    return int(activations[0]), int(keys[0])


def writes_upstream(emulator: EmulatorServer) -> list[dict[str, Any]]:
    history = httpx.get(f"{emulator.url}/_emulator/requests").json()["items"]
    return [e for e in history if e["method"] != "GET" and e["path"].startswith("/data/foundation/flowservice")]


def refused(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem: dict[str, Any] = response.json()
    assert problem["type"] == "urn:activation-gateway:problem:validation-error"
    assert len(problem["errors"]) == 1, problem
    error: dict[str, Any] = problem["errors"][0]
    return error


# --------------------------------------------------------------------------- the listing
def test_destinations_list_the_emulators_email_marketing_catalog(gateway: GatewayProcess) -> None:
    with gateway.client() as client:
        response = client.get("/destinations")
        unauthorized = client.get("/destinations", headers={"Authorization": "Bearer not-a-key"})
    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["name"] for item in items] == EMAIL_MARKETING
    assert items == expected_from_the_emulator()
    # Spelled out too, so that a slip shared by the gateway and the derivation above still fails.
    by_name = {item["name"]: item for item in items}
    assert by_name["Adobe Campaign"]["storage"] == ["s3", "sftp"]
    assert by_name["Adobe Campaign"]["connectionSpecId"] == "0b23e41a-cb4a-4321-a78f-3b654f5d7d97"
    assert by_name["Oracle Responsys"]["flowSpecId"] == "51d675ce-e270-408d-91fc-22717bdf2148"
    assert all(by_name[name]["storage"] == ["sftp"] for name in EMAIL_MARKETING[1:])
    assert all(item["sftpAuth"] == ["password", "sshKey"] for item in items)
    # Authenticated like every other endpoint: a wrong key is refused even in development mode.
    assert unauthorized.status_code == 401


# --------------------------------------------------------------------------- early 422s
def test_an_unknown_destination_is_refused_at_once_naming_the_valid_ones(
    gateway: GatewayProcess, emulator: EmulatorServer, database_url: str
) -> None:
    with gateway.client() as client:
        response = client.post(
            "/activations",
            json=s3_request(destination="Carrier Pigeon Marketing"),
            headers={"Idempotency-Key": new_key()},
        )
    error = refused(response)
    assert error["path"] == "/destination"
    assert all(name in error["message"] for name in EMAIL_MARKETING), error
    assert activation_count(database_url) == (0, 0), "nothing was created, not even the idempotency key"
    assert writes_upstream(emulator) == []


def test_a_storage_type_the_destination_does_not_take_is_refused_naming_its_storage(
    gateway: GatewayProcess, emulator: EmulatorServer, database_url: str
) -> None:
    with gateway.client() as client:
        # Oracle Eloqua takes SFTP only.
        response = client.post(
            "/activations", json=s3_request(destination="oracle eloqua"), headers={"Idempotency-Key": new_key()}
        )
        accepted = client.post(
            "/activations", json=sftp_ssh_request(destination="Oracle Eloqua"), headers={"Idempotency-Key": new_key()}
        )
    error = refused(response)
    assert error["path"] == "/storage/type"
    assert "Oracle Eloqua" in error["message"] and "it accepts: sftp" in error["message"], error
    assert accepted.status_code == 202, accepted.text
    assert activation_count(database_url)[0] == 1, "only the SFTP request became an activation"


def test_the_check_names_the_sftp_credential_a_destination_does_not_take() -> None:
    # No destination of the emulator's catalog lacks one of the two SFTP methods: the rule itself.
    only_passwords = [Destination("Legacy ESP", "spec", "flow", storage=("sftp",), sftp_auth=("password",))]
    refusal = check_choice(only_passwords, destination="legacy esp", storage_type="sftp", sftp_auth="sshKey")
    assert refusal is not None and refusal.field == "sftpAuth"
    assert "Legacy ESP" in refusal.message and "it accepts: password" in refusal.message
    assert check_choice(only_passwords, destination=" Legacy ESP ", storage_type="sftp", sftp_auth="password") is None


class _Specs:
    """A SpecSource with fixed lists."""

    def __init__(self, connection_specs: list[dict[str, Any]], flow_specs: list[dict[str, Any]]) -> None:
        self.lists = {"connectionSpecs": connection_specs, "flowSpecs": flow_specs}

    async def list_all(self, collection: str, *, sandbox: str) -> list[dict[str, Any]]:
        return self.lists[collection]


def _spec(spec_id: str, name: str, auth: list[str], modes: list[str]) -> dict[str, Any]:
    target = {"spec": {"properties": {"mode": {"enum": modes}}}}
    return {"id": spec_id, "name": name, "authSpec": [{"name": a} for a in auth], "targetSpec": target}


def test_the_listing_applies_the_sagas_rules() -> None:
    targets = [ADOBE_CAMPAIGN, ORACLE_ELOQUA, SFTP_LEGACY]
    profile_flow = {"id": "flow", "sourceConnectionSpecIds": [PROFILE_STORE], "targetConnectionSpecIds": targets}
    specs = _Specs(
        [
            # S3 credentials but no S3 target mode: SFTP only.
            _spec(ADOBE_CAMPAIGN, "Mail Co", ["S3", "SFTP with Password"], ["FTP"]),
            _spec(ORACLE_ELOQUA, "mail co", ["S3"], ["S3"]),  # a namesake resolve() never reaches
            _spec(ORACLE_RESPONSYS, "No Flow", ["S3"], ["S3"]),  # no flow spec from the Profile store
            _spec(SFTP_LEGACY, "Old SFTP", ["SFTP with SSH Key"], ["FTP"]),  # not an email-marketing destination
        ],
        [profile_flow],
    )
    catalog = DestinationCatalog(ttl_seconds=60)

    async def scenario() -> tuple[list[Destination], str]:
        listed = await catalog.destinations(specs, sandbox="prod")
        with pytest.raises(StepFailed, match="no 'S3' target mode"):
            await catalog.resolve(specs, destination="MAIL CO", storage_kind="s3", sandbox="prod")
        with pytest.raises(StepFailed, match="no destination named 'Old SFTP'"):
            await catalog.resolve(specs, destination="Old SFTP", storage_kind="sftp_ssh", sandbox="prod")
        resolved = await catalog.resolve(specs, destination="mail co", storage_kind="sftp_password", sandbox="prod")
        return listed, resolved.connection_spec_id

    listed, resolved_id = asyncio.run(scenario())
    assert listed == [Destination("Mail Co", ADOBE_CAMPAIGN, "flow", storage=("sftp",), sftp_auth=("password",))]
    assert resolved_id == ADOBE_CAMPAIGN


def test_an_api_only_process_checks_the_catalog_too(start_gateway: Callable[..., GatewayProcess]) -> None:
    api = start_gateway(args=["--no-worker"])
    with api.client() as client:
        listed = client.get("/destinations")
        response = client.post(
            "/activations", json=sftp_password_request(destination="Nowhere"), headers={"Idempotency-Key": new_key()}
        )
    assert listed.status_code == 200 and len(listed.json()["items"]) == len(EMAIL_MARKETING)
    assert refused(response)["path"] == "/destination"


# --------------------------------------------------------------------------- fallback
@pytest.fixture
def cold_gateway(start_gateway: Callable[..., GatewayProcess]) -> GatewayProcess:
    """A private gateway whose every check reads the catalog (nothing cached), waits at most 0.5 s
    for it, and whose saga retries an unavailable Adobe for long enough to see it come back."""
    return start_gateway(SPEC_CACHE_TTL_SECONDS="0", DESTINATION_CHECK_TIMEOUT_SECONDS="0.5", RETRY_MAX_ATTEMPTS="30")


def test_while_the_catalog_is_unreadable_requests_are_accepted_and_the_saga_resolves_them(
    cold_gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    httpx.post(f"{emulator.url}/_emulator/faults", json=CATALOG_DOWN).raise_for_status()
    unknown_body, unknown_key = s3_request(destination="Carrier Pigeon Marketing"), new_key()
    with cold_gateway.client() as client:
        valid = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        unknown = client.post("/activations", json=unknown_body, headers={"Idempotency-Key": unknown_key})
        listing = client.get("/destinations")
        httpx.delete(f"{emulator.url}/_emulator/faults").raise_for_status()  # Adobe is back
        assert valid.status_code == 202, valid.text
        assert unknown.status_code == 202, unknown.text
        assert listing.status_code == 503 and listing.headers["retry-after"]
        assert listing.json()["type"] == "urn:activation-gateway:problem:catalog-unavailable"
        succeeded = wait_terminal(client, valid.json()["id"], timeout=60)
        failed = wait_terminal(client, unknown.json()["id"], timeout=60)
    assert succeeded["status"] == "succeeded", succeeded
    assert failed["status"] == "failed", failed
    assert failed["error"]["type"].endswith("unknown-destination")
    assert all(name in failed["error"]["detail"] for name in EMAIL_MARKETING), "the saga names the valid ones too"
    with cold_gateway.client() as client:  # the catalog is readable again: a retry is still the replay
        retried = client.post("/activations", json=unknown_body, headers={"Idempotency-Key": unknown_key})
    assert retried.status_code == 202 and retried.headers["idempotent-replayed"] == "true", retried.text
    assert retried.json()["id"] == unknown.json()["id"]


def test_a_slow_catalog_delays_a_request_by_the_bound_only(
    cold_gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    rule = {"method": "GET", "path": "/connectionSpecs", "fixedMs": 1500}
    httpx.post(f"{emulator.url}/_emulator/latency", json=rule).raise_for_status()
    with cold_gateway.client() as client:
        started = time.monotonic()
        response = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        elapsed = time.monotonic() - started
        httpx.delete(f"{emulator.url}/_emulator/latency").raise_for_status()
        assert response.status_code == 202, response.text
        assert 0.5 <= elapsed < 1.4, f"answered after {elapsed:.2f} s; the bound is 0.5 s and Adobe takes 1.5 s"
        final = wait_terminal(client, response.json()["id"], timeout=60)
    assert final["status"] == "succeeded", final
