"""The drift rules (domain/drift.py): what differs, and which operation repairs it."""

from __future__ import annotations

import uuid

from app.domain.drift import flow_drift, repair_for
from app.domain.flow_update import desired_flow_of
from app.domain.workflows import OperationKind

ACTIVATION = uuid.uuid4()
SEGMENT = {
    "id": "a",
    "name": "A",
    "exportMode": "DAILY_FULL_EXPORT",
    "schedule": {"frequency": "DAILY", "startDate": "2026-12-01"},
}
DESIRED = desired_flow_of(ACTIVATION, "Spring", [SEGMENT], ["person.name"])


def flow(state: str = "enabled", segments: list[dict[str, object]] | None = None) -> dict[str, object]:
    return {
        "id": "f",
        "name": DESIRED.name,
        "state": state,
        "transformations": [
            {
                "params": {
                    "segmentSelectors": {
                        "selectors": [
                            {"type": "PLATFORM_SEGMENT", "value": s}
                            for s in ([SEGMENT] if segments is None else segments)
                        ]
                    },
                    "profileSelectors": {
                        "selectors": [{"type": "JSON_PATH", "value": {"path": "person.name", "operator": "EXISTS"}}]
                    },
                }
            }
        ],
    }


def test_an_equal_flow_has_no_drift() -> None:
    assert flow_drift(flow(), DESIRED, "enabled") == []
    assert repair_for([]) is None


def test_a_state_changed_in_adobe() -> None:
    found = flow_drift(flow("DISABLED"), DESIRED, "enabled")
    assert found == [{"kind": "state-changed", "expected": "enabled", "actual": "disabled"}]
    assert repair_for(found) == OperationKind.RESUME
    assert repair_for(flow_drift(flow("enabled"), DESIRED, "disabled")) == OperationKind.PAUSE


def test_selectors_first_then_the_state() -> None:
    found = flow_drift(flow("disabled", segments=[]), DESIRED, "enabled")
    assert [d["kind"] for d in found] == ["audience-missing", "state-changed"]
    assert repair_for(found) == OperationKind.UPDATE


def test_a_deleted_flow_is_never_repaired() -> None:
    found = flow_drift(None, DESIRED, "enabled")
    assert found == [{"kind": "flow-deleted"}]
    assert repair_for(found) is None
