"""The contract checker must be able to fail: deliberately wrong exchanges are rejected."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from tests.support.adobe_contract import (
    adobe_documents,  # noqa: F401 - the fixture, found by name: skips these tests without Adobe's documents
    assert_exchanges_valid,
    undocumented_statuses,
    validate_exchange,
)

from .conftest import Api, create_chain, profile_base_body

pytestmark = pytest.mark.usefixtures("adobe_documents")


def _history(api: Api) -> list[dict[str, Any]]:
    return list(api.http.get("/_emulator/requests").json()["items"])


def _last(api: Api, method: str, suffix: str) -> dict[str, Any]:
    return next(e for e in reversed(_history(api)) if e["method"] == method and e["path"].endswith(suffix))


def test_valid_exchanges_pass(api: Api) -> None:
    chain = create_chain(api)
    api.get(f"/flows/{chain.flow}")
    api.delete(f"/flows/{chain.flow}")
    assert_exchanges_valid(_history(api))


def test_wrong_response_body_is_rejected(api: Api) -> None:
    created = api.create("connections", profile_base_body())
    api.get(f"/connections/{created['id']}")
    entry = copy.deepcopy(_last(api, "GET", created["id"]))
    assert validate_exchange(entry) == []
    entry["responseBody"]["items"][0]["createdAt"] = "yesterday"  # must be an integer in both documents
    problems = validate_exchange(entry)
    assert problems and all("response rejected" in problem for problem in problems)


def test_wrong_create_response_is_rejected(api: Api) -> None:
    api.create("connections", profile_base_body())
    entry = copy.deepcopy(_last(api, "POST", "/connections"))
    entry["responseBody"] = {"id": 42, "etag": None}
    assert validate_exchange(entry)


def test_missing_required_header_is_rejected(api: Api) -> None:
    api.get("/flows")
    entry = copy.deepcopy(_last(api, "GET", "/flows"))
    del entry["headers"]["x-api-key"]
    assert any("request rejected" in problem for problem in validate_exchange(entry))


def test_wrong_request_body_is_rejected(api: Api) -> None:
    chain = create_chain(api)
    api.patch(f"/flows/{chain.flow}", [{"op": "replace", "path": "/name", "value": {"n": 1}}], chain.flow_etag)
    entry = copy.deepcopy(_last(api, "PATCH", chain.flow))
    entry["body"] = [{"op": "move", "path": "/name", "value": {}}]
    assert validate_exchange(entry)


def test_undocumented_success_status_is_a_problem(api: Api) -> None:
    chain = create_chain(api)
    api.delete(f"/flows/{chain.flow}")
    entry = copy.deepcopy(_last(api, "DELETE", chain.flow))
    assert validate_exchange(entry) == []
    entry["status"] = 200
    entry["responseBody"] = {"deleted": True}
    assert validate_exchange(entry)


def test_undocumented_error_statuses_are_reported_separately(api: Api) -> None:
    api.post("/connections", {"name": "x", "connectionSpec": {"id": "nope", "version": "1.0"}})  # 400 documented
    api.post("/sourceConnections", {"name": "x", "connectionSpec": {"id": "nope", "version": "1.0"}})  # 400: not
    history = _history(api)
    assert_exchanges_valid(history)
    assert undocumented_statuses(history) == ["POST /data/foundation/flowservice/sourceConnections -> 400"]
    with pytest.raises(AssertionError):
        assert_exchanges_valid(history, strict_status=True)


def test_ims_exchanges_get_a_hand_written_check(api: Api) -> None:
    entry = copy.deepcopy(_history(api)[0])
    assert entry["path"] == "/ims/token/v3"
    assert validate_exchange(entry) == []
    entry["responseBody"]["expires_in"] = "86399"
    assert validate_exchange(entry)
