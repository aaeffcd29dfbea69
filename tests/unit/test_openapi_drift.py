"""The committed OpenAPI document is what the code serves; regenerate with
`activation-gateway openapi` after changing the API."""

from __future__ import annotations

import json
from pathlib import Path

from app.main import create_app
from app.settings import Settings

COMMITTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_committed_openapi_matches_the_code() -> None:
    generated = create_app(Settings()).openapi()
    committed = json.loads(COMMITTED.read_text())
    assert committed == json.loads(json.dumps(generated)), (
        "openapi/openapi.json is stale: run `activation-gateway openapi` and commit the result"
    )


def test_operation_ids_are_stable() -> None:
    document = json.loads(COMMITTED.read_text())
    operation_ids = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    assert {
        "createActivation",
        "getActivation",
        "listActivations",
        "rollbackActivation",
        "listActivationEvents",
    } <= operation_ids
