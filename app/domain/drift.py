"""Drift (contract §13): how a flow as Adobe has it differs from the activation's applied desired
state, and what repairs it. One home for both rules: the reconciler reports what this finds and,
under `driftPolicy: enforce`, queues the operation this names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .flow_diff import DesiredFlow, differences
from .workflows import OperationKind

FLOW_DELETED = "flow-deleted"
STATE_CHANGED = "state-changed"
ENFORCE = "enforce"


def flow_drift(flow: Mapping[str, Any] | None, desired: DesiredFlow, desired_state: str) -> list[dict[str, Any]]:
    """What differs (flow_diff.differences, then the state); a flow that is gone is only that."""
    if flow is None:
        return [{"kind": FLOW_DELETED}]
    found = differences(flow, desired)
    state = flow.get("state")
    if isinstance(state, str) and state.lower() != desired_state:
        found.append({"kind": STATE_CHANGED, "expected": desired_state, "actual": state.lower()})
    return found


def repair_for(found: Sequence[Mapping[str, Any]]) -> OperationKind | None:
    """The operation that restores the desired state, one at a time: the audiences, attributes and
    name first (an update), then the state (resume or pause). None when nothing differs, or when
    the flow is gone: a deleted flow is reported, never recreated."""
    kinds = {item["kind"] for item in found}
    if not kinds or FLOW_DELETED in kinds:
        return None
    if kinds - {STATE_CHANGED}:
        return OperationKind.UPDATE
    expected = next(item["expected"] for item in found if item["kind"] == STATE_CHANGED)
    return OperationKind.RESUME if expected == "enabled" else OperationKind.PAUSE
