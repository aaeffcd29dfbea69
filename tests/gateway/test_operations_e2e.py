"""Operations of a live activation (contract §9, §11), end to end over real HTTP against the
emulator, on real PostgreSQL: pause and resume (Adobe's flow action, then the flow read back),
retire (DELETE), Idempotency-Key, If-Match, `409 activation-not-live`, the operations list, the
events timeline, the metric, and an action Adobe refuses (the live activation stays in place)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from flowservice_emulator import EmulatorServer
from tests.conftest import wait_for, wait_terminal
from tests.gateway.test_activation_e2e import activate, assert_one_of_each, emulator_state, flow_service_requests
from tests.gateway.test_faults import add_fault, fault_fired
from tests.gateway.test_rollback import nothing_left
from tests.security.test_callers import create_api_key
from tests.support.gateway import GatewayProcess
from tests.support.payloads import new_key, s3_request

PROBLEM = "urn:activation-gateway:problem:"
ENDED = {"succeeded", "failed"}
FLOW_STATE_STEPS = ["change_flow_state", "verify_flow_state"]
ACTION = {"method": "POST", "path": "/flows/*/action"}
# Long enough for any pause on a test machine: a `Prefer: wait` that runs out would answer 202.
WAIT = 20


# ---------------------------------------------------------------------------------------------- helpers
def live(gateway: GatewayProcess) -> dict[str, Any]:
    """A new activation, once it is live (succeeded)."""
    _, final = activate(gateway, s3_request())
    assert final["status"] == "succeeded", final
    return final


def mutate(
    client: httpx.Client,
    activation_id: str,
    action: str,
    *,
    key: str | None = "",
    wait: int | None = None,
    if_match: str | None = None,
) -> httpx.Response:
    """POST /pause or /resume, or DELETE for ``retire``; a fresh Idempotency-Key unless ``key`` is
    given (None: no key at all)."""
    headers: dict[str, str] = {}
    if key is not None:
        headers["Idempotency-Key"] = key or new_key()
    if wait is not None:
        headers["Prefer"] = f"wait={wait}"
    if if_match is not None:
        headers["If-Match"] = if_match
    if action == "retire":
        return client.delete(f"/activations/{activation_id}", headers=headers)
    return client.post(f"/activations/{activation_id}/{action}", headers=headers)


def operation_id(response: httpx.Response, activation_id: str) -> str:
    """The operation a mutation's Location names."""
    location = response.headers["location"]
    match = re.fullmatch(rf"/activations/{activation_id}/operations/([0-9a-f-]{{36}})", location)
    assert match, f"Location names no operation: {location}"
    return match.group(1)


def get_activation(client: httpx.Client, activation_id: str) -> dict[str, Any]:
    response = client.get(f"/activations/{activation_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert response.headers["etag"] == f'"r{body["revision"]}"'
    return body


def get_operation(client: httpx.Client, activation_id: str, op_id: str) -> dict[str, Any]:
    response = client.get(f"/activations/{activation_id}/operations/{op_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_operation(client: httpx.Client, activation_id: str, op_id: str, timeout: float = 30.0) -> dict[str, Any]:
    return wait_for(lambda: get_operation(client, activation_id, op_id), lambda o: o["status"] in ENDED, timeout)


def operations(client: httpx.Client, activation_id: str, **params: Any) -> dict[str, Any]:
    response = client.get(f"/activations/{activation_id}/operations", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def kinds(client: httpx.Client, activation_id: str) -> list[str]:
    return [op["kind"] for op in operations(client, activation_id, limit=100)["items"]]


def events(client: httpx.Client, activation_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get(f"/activations/{activation_id}/events").json()["items"]
    return items


def change_state(client: httpx.Client, activation_id: str, action: str) -> dict[str, Any]:
    """Pause or resume and wait for the operation to end; returns the operation."""
    response = mutate(client, activation_id, action, wait=WAIT)
    assert response.status_code in (200, 202), response.text
    return wait_operation(client, activation_id, operation_id(response, activation_id))


def upstream_flow(emulator: EmulatorServer, flow_id: str, sandbox: str = "prod") -> dict[str, Any]:
    flows = emulator_state(emulator)["resources"]["flows"][sandbox]
    return dict(next(f for f in flows if f["id"] == flow_id))


def flow_actions(emulator: EmulatorServer, flow_id: str) -> list[str]:
    """The query (`op=…`) of every flow action the gateway sent for this flow, in order (not the
    emulator's own entries for the requests a late_commit fault applied afterwards)."""
    return [
        e["query"]
        for e in flow_service_requests(emulator)
        if e["method"] == "POST" and e["path"].endswith(f"/flows/{flow_id}/action") and e["lateCommitOf"] is None
    ]


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEM + slug, body
    assert body["status"] == status
    return body


def add_latency(emulator: EmulatorServer, rule: dict[str, Any]) -> None:
    httpx.post(f"{emulator.url}/_emulator/latency", json=rule).raise_for_status()


def finished_metric(client: httpx.Client, kind: str, status: str) -> float:
    wanted = re.compile(rf'^gateway_operations_finished_total\{{(?=.*kind="{kind}")(?=.*status="{status}")[^}}]*\}} ')
    for line in client.get("/metrics").text.splitlines():
        if wanted.match(line):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


# ---------------------------------------------------------------------------------------------- pause, resume
def test_pause_then_resume_changes_the_flow_and_the_activation(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    with gateway.client() as client:
        created = get_activation(client, activation_id)
        assert (created["revision"], created["appliedRevision"], created["state"]) == (1, 1, "enabled")
        assert created["sync"]["status"] == "in_sync"

        paused = mutate(client, activation_id, "pause", wait=WAIT)
        assert paused.status_code == 200, "the pause ended within Prefer: wait"
        pause_id = operation_id(paused, activation_id)
        # The answer is the activation once the operation ended.
        body = paused.json()
        assert (body["revision"], body["appliedRevision"], body["state"]) == (2, 2, "disabled"), body
        assert paused.headers["etag"] == '"r2"'

        pause = wait_operation(client, activation_id, pause_id)
        assert pause["status"] == "succeeded", pause
        assert (pause["kind"], pause["revision"], pause["error"]) == ("pause", 2, None)
        assert [(s["name"], s["status"], s["attempts"]) for s in pause["steps"]] == [
            (name, "succeeded", 1) for name in FLOW_STATE_STEPS
        ]
        assert pause["completedAt"] is not None

        flow = upstream_flow(emulator, flow_id)
        assert flow["state"] == "disabled"
        assert flow_actions(emulator, flow_id) == ["op=disable"]
        after = get_activation(client, activation_id)
        assert after["status"] == "succeeded"
        assert (after["revision"], after["appliedRevision"], after["state"]) == (2, 2, "disabled")
        assert after["sync"]["status"] == "in_sync" and after["sync"]["error"] is None
        assert after["flow"]["etag"] == flow["etag"], "the etag of the flow read back is kept"

        # Already paused: 200, no new operation, no new revision, nothing sent upstream.
        again = mutate(client, activation_id, "pause", wait=WAIT)
        assert again.status_code == 200, again.text
        assert again.headers["location"] == f"/activations/{activation_id}"
        assert again.json()["revision"] == 2
        assert kinds(client, activation_id) == ["pause", "create"]
        assert flow_actions(emulator, flow_id) == ["op=disable"]

        resume = change_state(client, activation_id, "resume")
        assert resume["status"] == "succeeded", resume
        assert (resume["kind"], resume["revision"]) == ("resume", 3)
        assert upstream_flow(emulator, flow_id)["state"] == "enabled"
        assert flow_actions(emulator, flow_id) == ["op=disable", "op=enable"]
        resumed = get_activation(client, activation_id)
        assert (resumed["revision"], resumed["appliedRevision"], resumed["state"]) == (3, 3, "enabled")
        assert resumed["sync"]["status"] == "in_sync"
        assert kinds(client, activation_id) == ["resume", "pause", "create"]

        # Already enabled: 200 and nothing new.
        assert mutate(client, activation_id, "resume").status_code == 200
        assert kinds(client, activation_id) == ["resume", "pause", "create"]
    assert_one_of_each(emulator, activation_id)


def test_a_pause_answered_at_once_is_applying(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    """Without Prefer: wait the answer is 202 at once, the new revision not yet applied."""
    final = live(gateway)
    activation_id = final["id"]
    add_latency(emulator, {**ACTION, "fixedMs": 300})  # the answer surely comes before the operation ends
    with gateway.client() as client:
        accepted = mutate(client, activation_id, "pause")
        assert accepted.status_code == 202, accepted.text
        body = accepted.json()
        assert (body["revision"], body["appliedRevision"]) == (2, 1)
        assert body["sync"]["status"] == "applying"
        assert body["state"] == "enabled", "state is the flow's state as last confirmed"
        assert accepted.headers["etag"] == '"r2"'
        assert accepted.headers.get("retry-after"), "a polling hint while the operation waits"
        assert "idempotent-replayed" not in accepted.headers
        op = wait_operation(client, activation_id, operation_id(accepted, activation_id))
        assert op["status"] == "succeeded", op
        assert upstream_flow(emulator, final["flow"]["id"])["state"] == "disabled"


def test_prefer_wait_is_acknowledged(gateway: GatewayProcess) -> None:
    final = live(gateway)
    with gateway.client() as client:
        paused = mutate(client, final["id"], "pause", wait=WAIT)
    assert paused.status_code == 200, paused.text
    assert paused.headers.get("preference-applied") == f"wait={WAIT}"


def test_queued_pause_and_resume_run_in_order(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    """Pause then resume at once: the resume waits for the pause; the flow ends enabled."""
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    with gateway.client() as client:
        pause = mutate(client, activation_id, "pause")
        resume = mutate(client, activation_id, "resume")
        assert (pause.status_code, resume.status_code) == (202, 202), resume.text
        assert resume.json()["revision"] == 3
        resumed = wait_operation(client, activation_id, operation_id(resume, activation_id))
        paused = get_operation(client, activation_id, operation_id(pause, activation_id))
        assert (paused["status"], resumed["status"]) == ("succeeded", "succeeded")
        assert paused["completedAt"] <= resumed["startedAt"], "one operation at a time, in order"
        after = get_activation(client, activation_id)
    assert (after["revision"], after["appliedRevision"], after["state"]) == (3, 3, "enabled")
    assert upstream_flow(emulator, flow_id)["state"] == "enabled"
    assert flow_actions(emulator, flow_id) == ["op=disable", "op=enable"]


# ---------------------------------------------------------------------------------------------- Idempotency-Key
def test_the_same_key_replays_the_first_answer(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    key = new_key()
    with gateway.client() as client:
        first = mutate(client, activation_id, "pause", key=key)
        replay = mutate(client, activation_id, "pause", key=key)
        assert first.status_code == 202, first.text
        assert "idempotent-replayed" not in first.headers
        assert replay.status_code == 202, replay.text
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.headers["location"] == first.headers["location"]
        op_id = operation_id(first, activation_id)
        assert wait_operation(client, activation_id, op_id)["status"] == "succeeded"

        # Still the first answer once the operation is done; never a second operation.
        late = mutate(client, activation_id, "pause", key=key)
        assert (late.status_code, late.headers["idempotent-replayed"]) == (202, "true")
        assert operation_id(late, activation_id) == op_id
        assert kinds(client, activation_id) == ["pause", "create"]
        assert flow_actions(emulator, flow_id) == ["op=disable"]

        # The same key for a different request on this activation.
        reused = mutate(client, activation_id, "resume", key=key)
        assert_problem(reused, 422, "idempotency-key-reused")
        assert_problem(mutate(client, activation_id, "retire", key=key), 422, "idempotency-key-reused")
        after = get_activation(client, activation_id)
        assert (after["status"], after["revision"], after["state"]) == ("succeeded", 2, "disabled")

        # No key: refused before anything is decided.
        for action in ("pause", "resume", "retire"):
            assert_problem(mutate(client, activation_id, action, key=None), 400, "idempotency-key-missing")
        assert kinds(client, activation_id) == ["pause", "create"]
        assert get_activation(client, activation_id)["status"] == "succeeded"

        # Keys are scoped per activation: the same key on another one is a new request.
        other = live(gateway)
        elsewhere = mutate(client, other["id"], "pause", key=key)
        assert elsewhere.status_code == 202, elsewhere.text
        assert "idempotent-replayed" not in elsewhere.headers
        assert operation_id(elsewhere, other["id"]) != op_id


def test_a_key_first_answered_200_replays_200(gateway: GatewayProcess) -> None:
    final = live(gateway)
    activation_id = final["id"]
    key = new_key()
    with gateway.client() as client:
        first = mutate(client, activation_id, "resume", key=key)  # already enabled
        replay = mutate(client, activation_id, "resume", key=key)
        assert first.status_code == 200, first.text
        assert (replay.status_code, replay.headers["idempotent-replayed"]) == (200, "true")
        assert replay.headers["location"] == f"/activations/{activation_id}"
        assert kinds(client, activation_id) == ["create"]
        assert get_activation(client, activation_id)["revision"] == 1


# ---------------------------------------------------------------------------------------------- If-Match
def test_if_match(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    with gateway.client() as client:
        etag = client.get(f"/activations/{activation_id}").headers["etag"]
        assert etag == '"r1"'
        current = mutate(client, activation_id, "pause", if_match=etag)
        assert current.status_code == 202, current.text
        assert wait_operation(client, activation_id, operation_id(current, activation_id))["status"] == "succeeded"

        key = new_key()
        for stale in (etag, 'W/"r2"', '"r3"'):  # an old revision; a weak validator never matches
            problem = assert_problem(
                mutate(client, activation_id, "resume", key=key, if_match=stale), 412, "precondition-failed"
            )
            assert '"r2"' in problem["detail"]
        assert_problem(mutate(client, activation_id, "retire", if_match=etag), 412, "precondition-failed")
        after = get_activation(client, activation_id)
        assert (after["status"], after["revision"], after["appliedRevision"], after["state"]) == (
            "succeeded",
            2,
            2,
            "disabled",
        )
        assert kinds(client, activation_id) == ["pause", "create"], "nothing was queued"
        assert flow_actions(emulator, flow_id) == ["op=disable"]

        # A refused request did not use up its key; the current ETag (or one of a list) matches.
        fresh = client.get(f"/activations/{activation_id}").headers["etag"]
        accepted = mutate(client, activation_id, "resume", key=key, if_match=f'"r1", {fresh}')
        assert accepted.status_code == 202, accepted.text
        assert "idempotent-replayed" not in accepted.headers
        assert wait_operation(client, activation_id, operation_id(accepted, activation_id))["status"] == "succeeded"
        assert get_activation(client, activation_id)["revision"] == 3
        assert mutate(client, activation_id, "pause", if_match="*").status_code == 202


# ---------------------------------------------------------------------------------------------- not live
def test_a_mutation_of_an_activation_not_live_is_refused(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    with gateway.client() as client:
        # Still being created.
        add_latency(emulator, {"method": "POST", "path": "/flows", "fixedMs": 1500})
        created = client.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        assert created.status_code == 202, created.text
        creating = created.json()["id"]
        for action in ("pause", "resume"):
            problem = assert_problem(mutate(client, creating, action), 409, "activation-not-live")
            assert problem["detail"]
        assert wait_terminal(client, creating)["status"] == "succeeded"
        assert kinds(client, creating) == ["create"]
        httpx.delete(f"{emulator.url}/_emulator/latency").raise_for_status()

        # Torn down.
        final = live(gateway)
        retired = mutate(client, final["id"], "retire")
        assert retired.status_code == 202, retired.text
        assert wait_terminal(client, final["id"])["status"] == "rolled_back"
        for action in ("pause", "resume"):
            assert_problem(mutate(client, final["id"], action), 409, "activation-not-live")
        assert kinds(client, final["id"]) == ["retire", "create"]

        # Unknown activations.
        unknown = "00000000-0000-4000-8000-000000000000"
        for action in ("pause", "resume", "retire"):
            assert_problem(mutate(client, unknown, action), 404, "not-found")
            assert_problem(mutate(client, "not-a-uuid", action), 404, "not-found")


# ---------------------------------------------------------------------------------------------- retire
def test_retire_tears_a_paused_activation_down(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    final = live(gateway)
    activation_id = final["id"]
    with gateway.client() as client:
        assert change_state(client, activation_id, "pause")["status"] == "succeeded"
        add_latency(emulator, {"method": "DELETE", "path": "*", "fixedMs": 100})  # the answer comes first
        key = new_key()
        retired = mutate(client, activation_id, "retire", key=key)
        assert retired.status_code == 202, retired.text
        assert retired.json()["status"] == "rolling_back"
        retire_id = operation_id(retired, activation_id)
        ended = wait_terminal(client, activation_id)
        assert ended["status"] == "rolled_back", ended
        assert nothing_left(emulator, activation_id)
        assert ended["sync"]["status"] == "unknown"

        retire = wait_operation(client, activation_id, retire_id)
        assert (retire["kind"], retire["status"], retire["error"]) == ("retire", "succeeded", None), retire
        listed = operations(client, activation_id)["items"]
        assert [(op["kind"], op["status"]) for op in listed] == [
            ("retire", "succeeded"),
            ("pause", "succeeded"),
            ("create", "succeeded"),
        ]
        assert listed[-1]["id"] == activation_id

        # Already torn down: 200, nothing new; the first key still replays its 202.
        again = mutate(client, activation_id, "retire")
        assert again.status_code == 200, again.text
        assert again.headers["location"] == f"/activations/{activation_id}"
        replay = mutate(client, activation_id, "retire", key=key)
        assert (replay.status_code, replay.headers["idempotent-replayed"]) == (202, "true")
        assert operation_id(replay, activation_id) == retire_id
        assert kinds(client, activation_id) == ["retire", "pause", "create"]
        # The v1 rollback keeps working, and also starts nothing new.
        assert client.post(f"/activations/{activation_id}/rollback").status_code == 200
        assert kinds(client, activation_id) == ["retire", "pause", "create"]


def test_retire_cancels_what_waits_in_the_queue(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    """A pause in flight and a resume queued behind it when the activation is retired: the resume
    never runs, the pause ends, and nothing is left upstream."""
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    add_latency(emulator, {**ACTION, "fixedMs": 800})
    with gateway.client() as client:
        pause = mutate(client, activation_id, "pause")
        pause_id = operation_id(pause, activation_id)
        wait_for(
            lambda: get_operation(client, activation_id, pause_id),
            lambda o: o["steps"][0]["status"] == "running",
            timeout=10,
        )
        resume = mutate(client, activation_id, "resume")
        assert resume.status_code == 202, resume.text
        retired = mutate(client, activation_id, "retire")
        assert retired.status_code == 202, retired.text
        ended = wait_terminal(client, activation_id)
        assert ended["status"] == "rolled_back", ended
        assert nothing_left(emulator, activation_id)

        cancelled = get_operation(client, activation_id, operation_id(resume, activation_id))
        assert cancelled["status"] == "failed"
        assert cancelled["error"]["type"] == PROBLEM + "operation-cancelled"
        assert [s["status"] for s in cancelled["steps"]] == ["pending", "pending"]
        # it ended with its own event, as any operation does, before the retire's
        ends = [e["data"] for e in events(client, activation_id) if e["type"] == "operation"]
        of_resume = [d for d in ends if d["operationId"] == cancelled["id"]]
        assert [d["status"] for d in of_resume] == ["pending", "failed"], ends
        failed = of_resume[1]
        assert failed["error"]["type"] == PROBLEM + "operation-cancelled"
        assert failed["kind"] == "resume" and failed["revision"] == cancelled["revision"]
        retire_id = operation_id(retired, activation_id)
        retire_started = next(i for i, d in enumerate(ends) if d["operationId"] == retire_id)
        assert ends.index(failed) < retire_started
        paused = wait_operation(client, activation_id, pause_id, timeout=10)
        assert paused["status"] in ENDED, "the operation in flight is not left running"
        retire = wait_operation(client, activation_id, operation_id(retired, activation_id))
        assert retire["status"] == "succeeded", retire
    assert "op=enable" not in flow_actions(emulator, flow_id), "the cancelled resume was never sent"


# ---------------------------------------------------------------------------------------------- reading operations
def test_operations_list_and_one_operation(gateway: GatewayProcess) -> None:
    final = live(gateway)
    activation_id = final["id"]
    with gateway.client() as client:
        pause = change_state(client, activation_id, "pause")
        resume = change_state(client, activation_id, "resume")
        listed = operations(client, activation_id)
        assert [op["id"] for op in listed["items"]] == [resume["id"], pause["id"], activation_id], "newest first"
        assert listed["nextCursor"] is None
        assert [op["revision"] for op in listed["items"]] == [3, 2, 1]
        assert listed["items"][:2] == [resume, pause]

        create = get_operation(client, activation_id, activation_id)
        assert (create["kind"], create["status"], create["revision"]) == ("create", "succeeded", 1)
        assert create == listed["items"][2]
        assert [s["name"] for s in create["steps"]] == [s["name"] for s in final["steps"]]
        assert all(s["status"] == "succeeded" for s in create["steps"])

        # One page of one: the first page has a cursor to the rest.
        first = operations(client, activation_id, limit=1)
        assert [op["id"] for op in first["items"]] == [resume["id"]]
        assert first["nextCursor"]
        second = operations(client, activation_id, limit=1, cursor=first["nextCursor"])
        assert [op["id"] for op in second["items"]] == [pause["id"]]

        assert_problem(
            client.get(f"/activations/{activation_id}/operations", params={"cursor": "x1"}), 400, "invalid-cursor"
        )
        for unknown in ("00000000-0000-4000-8000-000000000000", "not-a-uuid"):
            assert_problem(client.get(f"/activations/{activation_id}/operations/{unknown}"), 404, "not-found")
            assert_problem(client.get(f"/activations/{unknown}/operations"), 404, "not-found")
        # An operation is found only under its own activation.
        other = live(gateway)
        assert_problem(client.get(f"/activations/{other['id']}/operations/{pause['id']}"), 404, "not-found")
        assert_problem(client.get(f"/activations/{other['id']}/operations/{activation_id}"), 404, "not-found")


def collect_pages(client: httpx.Client, activation_id: str, limit: int) -> list[str]:
    ids: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        page = operations(client, activation_id, limit=limit, **({"cursor": cursor} if cursor else {}))
        ids += [op["id"] for op in page["items"]]
        cursor = page["nextCursor"]
        if cursor is None:
            return ids
    raise AssertionError(f"paging does not end: {ids}")


@pytest.mark.parametrize("limit", [1, 2])
def test_paging_reaches_the_create_operation(gateway: GatewayProcess, limit: int) -> None:
    final = live(gateway)
    activation_id = final["id"]
    with gateway.client() as client:
        pause = change_state(client, activation_id, "pause")
        resume = change_state(client, activation_id, "resume")
        assert collect_pages(client, activation_id, limit) == [resume["id"], pause["id"], activation_id]


def test_paging_with_a_partial_last_page(gateway: GatewayProcess) -> None:
    final = live(gateway)
    activation_id = final["id"]
    with gateway.client() as client:
        ids = [change_state(client, activation_id, action)["id"] for action in ("pause", "resume", "pause")]
        assert collect_pages(client, activation_id, 2) == [*reversed(ids), activation_id]
        assert collect_pages(client, activation_id, 20) == [*reversed(ids), activation_id]


def test_another_clients_activation_is_not_found(
    start_gateway: Callable[..., GatewayProcess], emulator: EmulatorServer
) -> None:
    alice_key, alice_entry = create_api_key("alice")
    gateway = start_gateway(DEV_MODE="true", API_KEYS=alice_entry)
    with gateway.client(headers={"Authorization": f"Bearer {alice_key}"}) as alice, gateway.client() as dev:
        created = alice.post("/activations", json=s3_request(), headers={"Idempotency-Key": new_key()})
        activation_id = created.json()["id"]
        assert wait_terminal(alice, activation_id)["status"] == "succeeded"
        for action in ("pause", "resume", "retire"):
            assert_problem(mutate(dev, activation_id, action), 404, "not-found")
        assert_problem(dev.get(f"/activations/{activation_id}/operations"), 404, "not-found")
        assert_problem(dev.get(f"/activations/{activation_id}/operations/{activation_id}"), 404, "not-found")
        # Alice's keys are hers: the dev client's key does not replay or block hers.
        key = new_key()
        assert_problem(mutate(dev, activation_id, "pause", key=key), 404, "not-found")
        paused = mutate(alice, activation_id, "pause", key=key, wait=WAIT)
        assert paused.status_code == 200, paused.text
        assert "idempotent-replayed" not in paused.headers
        body = get_activation(alice, activation_id)
        assert (body["status"], body["revision"], body["state"]) == ("succeeded", 2, "disabled")
        assert [op["kind"] for op in operations(alice, activation_id)["items"]] == ["pause", "create"]


# ---------------------------------------------------------------------------------------------- timeline, metric
def test_events_and_metric_of_a_pause(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    with gateway.client() as client:
        before = finished_metric(client, "pause", "succeeded")
        pause = change_state(client, activation_id, "pause")
        assert pause["status"] == "succeeded"
        timeline = events(client, activation_id)
        wait_for(lambda: {"n": finished_metric(client, "pause", "succeeded")}, lambda m: m["n"] == before + 1, 5)

    mine = [e for e in timeline if e["type"] == "operation" and e["data"]["operationId"] == pause["id"]]
    assert [e["data"]["status"] for e in mine] == ["pending", "running", "succeeded"], mine
    assert all(e["data"]["kind"] == "pause" and e["data"]["revision"] == 2 for e in mine)
    steps = [e for e in timeline if e["type"] == "step" and e["data"].get("operationId") == pause["id"]]
    assert [(e["step"], e["data"]["status"]) for e in steps] == [(name, "succeeded") for name in FLOW_STATE_STEPS]
    calls = [e for e in timeline if e["type"] == "upstream" and e["step"] in FLOW_STATE_STEPS]
    assert [(e["step"], e["data"]["method"], e["data"]["path"], e["data"]["status"]) for e in calls] == [
        ("change_flow_state", "POST", f"/flows/{flow_id}/action", 200),
        ("verify_flow_state", "GET", f"/flows/{flow_id}", 200),
    ]
    assert all(e["data"]["requestId"] for e in calls)
    # In time order: queued, started, the call, its step, the read back, its step, the end.
    ids = [e["id"] for e in (mine[0], mine[1], calls[0], steps[0], calls[1], steps[1], mine[2])]
    assert ids == sorted(ids), timeline


# ---------------------------------------------------------------------------------------------- Adobe says no
def test_a_refused_action_fails_the_operation_and_keeps_the_activation(
    gateway: GatewayProcess, emulator: EmulatorServer
) -> None:
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    fault = add_fault(emulator, {**ACTION, "status": 400, "times": 1})
    with gateway.client() as client:
        before = finished_metric(client, "pause", "failed")
        pause = change_state(client, activation_id, "pause")
        assert pause["status"] == "failed", pause
        assert fault_fired(emulator, fault) == 1
        error = pause["error"]
        assert error["type"] == PROBLEM + "upstream-error", error
        assert (error["step"], error["upstreamStatus"]) == ("change_flow_state", 400), error
        change, verify = pause["steps"]
        assert (change["status"], change["attempts"]) == ("failed", 1), "a 4xx is not retried"
        assert (verify["status"], verify["attempts"]) == ("pending", 0)

        after = get_activation(client, activation_id)
        assert after["status"] == "succeeded", "an operation that fails leaves the live activation in place"
        assert after["state"] == "enabled"
        assert (after["revision"], after["appliedRevision"]) == (2, 1)
        assert after["sync"]["status"] == "failed"
        assert after["sync"]["error"]["type"] == error["type"]
        assert after["error"] is None, "the activation's own error is the create's"
        assert upstream_flow(emulator, flow_id)["state"] == "enabled"
        assert_one_of_each(emulator, activation_id)
        wait_for(lambda: {"n": finished_metric(client, "pause", "failed")}, lambda m: m["n"] == before + 1, 5)
        ended = [
            e for e in events(client, activation_id) if e["type"] == "operation" and e["data"]["status"] == "failed"
        ]
        assert [e["data"]["operationId"] for e in ended] == [pause["id"]]

        # The desired state went back to what Adobe has: a new pause is a new operation, and works.
        retried = change_state(client, activation_id, "pause")
        assert retried["status"] == "succeeded", retried
        assert retried["revision"] == 3
        healed = get_activation(client, activation_id)
    assert (healed["revision"], healed["appliedRevision"], healed["state"]) == (3, 3, "disabled")
    assert healed["sync"] == {**healed["sync"], "status": "in_sync", "error": None}
    assert upstream_flow(emulator, flow_id)["state"] == "disabled"


def test_a_transient_action_error_is_retried(gateway: GatewayProcess, emulator: EmulatorServer) -> None:
    final = live(gateway)
    activation_id, flow_id = final["id"], final["flow"]["id"]
    fault = add_fault(emulator, {**ACTION, "status": 503, "times": 2})
    with gateway.client() as client:
        pause = change_state(client, activation_id, "pause")
    assert pause["status"] == "succeeded", pause
    assert fault_fired(emulator, fault) == 2
    assert [s["attempts"] for s in pause["steps"]] == [3, 1]
    assert upstream_flow(emulator, flow_id)["state"] == "disabled"
    assert flow_actions(emulator, flow_id) == ["op=disable"] * 3
