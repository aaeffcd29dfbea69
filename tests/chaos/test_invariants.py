"""The soak's invariant checks on made-up data: each one can fail, and passes on what is correct."""

from __future__ import annotations

from typing import Any

from bench.chaos import EXPECTED_PER_SUCCESS, Call, Pause, Rollback, activation_violations, lease_violations, parse_call

A, B = "0b9c1f7e-1111-4e8a-9d4c-2f6d8e0a1b2c", "7d2e4a90-2222-4b1c-8e3f-5a6b7c8d9e0f"


def test_activation_invariants() -> None:
    assert activation_violations(A, "succeeded", dict(EXPECTED_PER_SUCCESS), None) == []
    assert activation_violations(A, "succeeded", {**EXPECTED_PER_SUCCESS, "flows": 2}, None)
    assert activation_violations(A, "succeeded", {**EXPECTED_PER_SUCCESS, "connections": 1}, None)
    assert activation_violations(A, "failed", {}, None) == []
    assert activation_violations(A, "failed", {"connections": 1}, None)
    assert activation_violations(A, "rolled_back", {"targetConnections": 1}, None)
    assert activation_violations(A, "rollback_failed", {}, None), "must not remain after settling"


def test_a_requested_rollback_must_end_rolled_back() -> None:
    for answer in (200, 202):
        requested = Rollback(A, "during", status=answer)
        assert activation_violations(A, "rolled_back", {}, requested) == []
        assert activation_violations(A, "succeeded", dict(EXPECTED_PER_SUCCESS), requested)
        assert activation_violations(A, "failed", {}, requested)
    refused = Rollback(A, "now", status=503)  # never acted on: nothing to hold the gateway to
    assert activation_violations(A, "succeeded", dict(EXPECTED_PER_SUCCESS), refused) == []


def test_a_resumed_process_must_not_call_for_a_lease_another_holds() -> None:
    pause = Pause(pid=4242, resumed_at=100.0, guarded={A: 103.0})
    allowed = [
        Call(99.0, "POST", "/flows", frozenset({A})),  # before the pause ended (in flight)
        Call(101.0, "POST", "/flows", frozenset({B})),  # another activation
        Call(103.5, "POST", "/flows", frozenset({A})),  # once the other lease could have expired
    ]
    assert lease_violations(pause, allowed) == []
    [violation] = lease_violations(pause, [*allowed, Call(101.5, "PATCH", "/flows/f1", frozenset({A, B}))])
    assert "4242" in violation and A in violation and "PATCH /flows/f1" in violation


def _entry(**overrides: Any) -> dict[str, Any]:
    entry = {
        "time": 12.5,
        "method": "GET",
        "path": "/data/foundation/flowservice/connections",
        "headers": {"user-agent": "activation-gateway/1.0 (host-a:4242:9f8e7d6c)"},
        "body": None,
        "query": f"property=name%3D%3DCampaign+%5Bag%3A{A}%5D",
        "lateCommitOf": None,
    }
    return entry | overrides


def test_calls_are_attributed_to_the_process_and_activations_they_name() -> None:
    assert parse_call(_entry()) == (4242, Call(12.5, "GET", "/data/foundation/flowservice/connections", frozenset({A})))
    created = parse_call(_entry(method="POST", query="", body={"name": f"Flow [ag:{B}]"}))
    assert created is not None and created[1].activations == {B}
    assert parse_call(_entry(lateCommitOf=7)) is None, "a late commit is Adobe's doing, not the process's"
    assert parse_call(_entry(headers={"user-agent": "python-httpx/0.28"})) is None
