"""The webhook rules of app/domain/webhooks.py and the service's URL check with a resolver of the
test's own (a public name that resolves to an internal address: DNS rebinding at registration)."""

from __future__ import annotations

import asyncio

import pytest

from app.domain.sftp_hosts import HostAllowList
from app.domain.webhooks import EVENT_TYPES, address_refusal, matches, parse_receiver_url, pattern_refusal
from app.services.problems import ServiceProblem
from app.services.webhooks import WebhookService

NOTHING = HostAllowList()


@pytest.mark.parametrize(
    ("patterns", "event_type", "expected"),
    [
        (["activation.*"], "activation.succeeded", True),
        (["activation.*"], "operation.failed", False),
        (["run.failed"], "run.failed", True),
        (["run.failed"], "run.succeeded", False),
        (["*"], "activation.drifted", True),
        ([], "run.delayed", False),
    ],
)
def test_patterns_match_exact_types_groups_and_everything(patterns: list[str], event_type: str, expected: bool) -> None:
    assert matches(patterns, event_type) is expected


def test_every_listed_type_and_group_wildcard_is_a_valid_pattern() -> None:
    for event_type in EVENT_TYPES:
        assert pattern_refusal(event_type) is None
        assert pattern_refusal(event_type.split(".")[0] + ".*") is None
    assert pattern_refusal("activation.started") is not None
    assert pattern_refusal("activation") is not None
    assert pattern_refusal("*.failed") is not None


@pytest.mark.parametrize(
    ("addresses", "refused"),
    [
        (["93.184.215.14"], False),
        (["93.184.215.14", "127.0.0.1"], True),  # any address may be the one a connection takes
        (["10.0.0.7"], True),
        (["169.254.169.254"], True),
        (["::ffff:10.0.0.7"], True),
        (["2606:2800:21f:cb07:6820:80da:af6b:8b2c"], False),
        ([], True),  # does not resolve
    ],
)
def test_every_resolved_address_must_be_public(addresses: list[str], refused: bool) -> None:
    receiver = parse_receiver_url("https://hooks.example.com/x", NOTHING)
    assert (address_refusal(receiver, addresses, NOTHING) is not None) is refused


def test_an_allowed_host_or_range_lifts_the_refusals() -> None:
    by_name = HostAllowList.parse("receiver.internal")
    receiver = parse_receiver_url("http://receiver.internal:8080/x", by_name)
    assert receiver.port == 8080 and address_refusal(receiver, ["10.0.0.7"], by_name) is None
    by_range = HostAllowList.parse("10.0.0.0/8")
    receiver = parse_receiver_url("https://hooks.example.com/x", by_range)
    assert address_refusal(receiver, ["10.0.0.7"], by_range) is None
    assert address_refusal(receiver, ["127.0.0.1"], by_range) is not None
    with pytest.raises(ValueError, match="https"):
        parse_receiver_url("http://hooks.example.com/x", by_range)  # plain http: only to an allowed host


class _NoStore:
    async def insert(self, new: object) -> object:
        raise AssertionError("a refused subscription is never stored")


class _Cipher:
    def encrypt(self, secrets: dict[str, object]) -> str:
        return "ciphertext"


def test_a_public_name_that_resolves_to_loopback_is_refused_at_registration() -> None:
    async def rebinding(host: str, port: int) -> list[str]:
        assert (host, port) == ("rebind.example.com", 443)
        return ["127.0.0.1"]

    service = WebhookService(
        _NoStore(),  # type: ignore[arg-type]
        _Cipher(),  # type: ignore[arg-type]
        allowed_hosts=NOTHING,
        secret_overlap_seconds=60,
        resolver=rebinding,
    )
    with pytest.raises(ServiceProblem) as refused:
        asyncio.run(service.create("c", url="https://rebind.example.com/h", events=["run.*"], description=None))
    assert refused.value.status == 422
    ((path, message),) = refused.value.errors
    assert path == "/url" and "rebind.example.com resolves to 127.0.0.1" in message and "loopback" in message
