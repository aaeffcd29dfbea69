"""The flow's selectors against the desired state (contract §10, §13): what differs, and the one
JSON Patch that converges the flow as Adobe has it now.

Audiences are compared by id and attributes by XDM path, in no particular order: each audience
exports its own files and selector order means nothing upstream. Only the gateway's own fields of
an audience are compared; what Adobe adds to stored selectors (createTime and updateTime on
audiences, operator and mapping on attributes, flow-service.md Part 2 §4.6) is not ours and is kept
on every replace. A second selector for the same id or path, a selector of another type and a
malformed entry are surplus: the first well-formed one of each id or path is the one kept.

The patch's order makes it mean the same whether a server applies its operations in sequence
(RFC 6902) or every index against the document it read: replaces at their original indices, then
removes in descending index order (a removal moves only the entries after it), then appends.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Where the selectors live, key by key: the walk below creates whatever part of it a flow lacks.
_Path = tuple[str | int, ...]
_SEGMENT_PATH: _Path = ("transformations", 0, "params", "segmentSelectors", "selectors")
_PROFILE_PATH: _Path = ("transformations", 0, "params", "profileSelectors", "selectors")
SEGMENT_SELECTORS = "/transformations/0/params/segmentSelectors/selectors"
PROFILE_SELECTORS = "/transformations/0/params/profileSelectors/selectors"
SEGMENT_TYPE = "PLATFORM_SEGMENT"
PROFILE_TYPE = "JSON_PATH"
# The gateway-owned fields of an audience selector's value; everything else in a stored value is Adobe's.
SEGMENT_FIELDS = ("id", "name", "description", "exportMode", "schedule", "filenameTemplate")

_ABSENT = object()


@dataclass(frozen=True, slots=True)
class DesiredFlow:
    """What the flow should hold: normalized audiences (schemas.Segment.normalized), attribute
    paths, and its name (None leaves the name alone)."""

    segments: tuple[Mapping[str, Any], ...]
    attributes: tuple[str, ...]
    name: str | None = None

    def __post_init__(self) -> None:
        # Two desired entries for one id or path could never both be matched: no plan would converge.
        ids = [segment.get("id") for segment in self.segments]
        if not all(isinstance(i, str) for i in ids) or len(set(ids)) != len(ids):
            raise ValueError("desired audiences need unique string ids")
        if len(set(self.attributes)) != len(self.attributes):
            raise ValueError("desired attributes must be unique")
        foreign = {key for segment in self.segments for key in segment} - set(SEGMENT_FIELDS)
        if foreign:  # they would be sent but never compared, so never converge
            raise ValueError(f"desired audiences hold fields that are not the gateway's: {sorted(foreign)}")


@dataclass(frozen=True, slots=True)
class _Surplus:
    index: int
    key: str | None  # the entry's id or path, when it has one
    type: str  # the selector's type, or the list's own for an entry without one
    reason: str  # "not-desired", "duplicate" or "unrecognized" (another type, or malformed)


@dataclass(frozen=True, slots=True)
class _Changed:
    index: int
    stored: Mapping[str, Any]  # the selector as Adobe has it
    wanted: Mapping[str, Any]  # the desired audience
    fields: list[str]  # the gateway-owned fields that differ


@dataclass(slots=True)
class _ListDiff:
    """One selector list against its desired entries; indices are the stored list's."""

    path: _Path
    kept: dict[str, int] = field(default_factory=dict)  # id or path -> index of the selector kept
    surplus: list[_Surplus] = field(default_factory=list)  # stored order
    changed: list[_Changed] = field(default_factory=list)  # stored order
    missing: list[dict[str, Any]] = field(default_factory=list)  # whole selectors to append, desired order


def plan_update(flow: Mapping[str, Any], desired: DesiredFlow) -> list[dict[str, Any]]:
    """One JSON Patch taking the flow to the desired state; [] when it is there already. The patch
    shares no object with its inputs."""
    segments, profiles = _compare(flow, desired)
    operations: list[dict[str, Any]] = []
    if desired.name is not None and flow.get("name") != desired.name:
        operations.append({"op": "replace" if "name" in flow else "add", "path": "/name", "value": desired.name})
    for changed in segments.changed:
        # The whole selector, as Adobe's docs replace it: its other keys and Adobe's fields kept.
        selector = {**changed.stored, "value": {**changed.stored["value"], **changed.wanted}}
        path = f"{SEGMENT_SELECTORS}/{changed.index}"
        operations.append({"op": "replace", "path": path, "value": copy.deepcopy(selector)})
    for diff in (segments, profiles):
        for surplus in reversed(diff.surplus):
            # Both Adobe documents mark `value` required on a remove; its own example sends an empty one.
            value = {"type": surplus.type, "value": {}}
            operations.append({"op": "remove", "path": f"{_pointer(diff.path)}/{surplus.index}", "value": value})
    operations += _append_operations(flow, [(segments.path, segments.missing), (profiles.path, profiles.missing)])
    return operations


def differences(flow: Mapping[str, Any], desired: DesiredFlow) -> list[dict[str, Any]]:
    """What differs, for callers (sync.differences): [] exactly when plan_update is [].

    Items, in this order: ``{"kind": "name-changed", "expected", "actual"}``; ``audience-missing``
    ``{id}`` (desired order); ``audience-changed`` ``{id, index, fields}`` and ``audience-surplus``
    ``{index, id, reason}`` (stored order); ``attribute-missing`` ``{path}``; ``attribute-surplus``
    ``{index, path, reason}``. ``reason`` is "not-desired", "duplicate" (a later copy of a kept one)
    or "unrecognized" (a selector of another type, or malformed); ``id``/``path`` is null when the
    entry has none.
    """
    segments, profiles = _compare(flow, desired)
    items: list[dict[str, Any]] = []
    if desired.name is not None and flow.get("name") != desired.name:
        items.append({"kind": "name-changed", "expected": desired.name, "actual": flow.get("name")})
    items += [{"kind": "audience-missing", "id": selector["value"]["id"]} for selector in segments.missing]
    items += [
        {"kind": "audience-changed", "id": c.wanted["id"], "index": c.index, "fields": c.fields}
        for c in segments.changed
    ]
    items += [_surplus_item("audience-surplus", "id", surplus) for surplus in segments.surplus]
    items += [{"kind": "attribute-missing", "path": selector["value"]["path"]} for selector in profiles.missing]
    items += [_surplus_item("attribute-surplus", "path", surplus) for surplus in profiles.surplus]
    return items


# ------------------------------------------------------------------------------------ comparison
def _compare(flow: Mapping[str, Any], desired: DesiredFlow) -> tuple[_ListDiff, _ListDiff]:
    wanted = {segment["id"]: segment for segment in desired.segments}
    segments = _match(flow, _SEGMENT_PATH, SEGMENT_TYPE, "id", wanted)
    selectors = _selectors(flow, _SEGMENT_PATH)
    for index in sorted(segments.kept.values()):
        stored = selectors[index]
        audience = wanted[stored["value"]["id"]]
        fields = [f for f in SEGMENT_FIELDS if f in audience and stored["value"].get(f, _ABSENT) != audience[f]]
        if fields:
            segments.changed.append(_Changed(index, stored, audience, fields))
    segments.missing = [
        {"type": SEGMENT_TYPE, "value": copy.deepcopy(dict(segment))}
        for segment in desired.segments
        if segment["id"] not in segments.kept
    ]
    profiles = _match(flow, _PROFILE_PATH, PROFILE_TYPE, "path", desired.attributes)
    profiles.missing = [
        {"type": PROFILE_TYPE, "value": {"path": path, "operator": "EXISTS"}}
        for path in desired.attributes
        if path not in profiles.kept
    ]
    return segments, profiles


def _match(flow: Mapping[str, Any], path: _Path, type_: str, key_field: str, wanted: Collection[str]) -> _ListDiff:
    """Keep the first selector of the type for each wanted key; every other entry is surplus."""
    diff = _ListDiff(path)
    for index, selector in enumerate(_selectors(flow, path)):
        own_type = selector.get("type") if isinstance(selector, Mapping) else None
        key = _key(selector, key_field)
        if own_type != type_ or key is None:
            reason = "unrecognized"
        elif key in diff.kept:
            reason = "duplicate"
        elif key not in wanted:
            reason = "not-desired"
        else:
            diff.kept[key] = index
            continue
        diff.surplus.append(_Surplus(index, key, own_type if isinstance(own_type, str) else type_, reason))
    return diff


def _key(selector: Any, key_field: str) -> str | None:
    """The selector's id or path, None when it has no such string."""
    value = selector.get("value") if isinstance(selector, Mapping) else None
    key = value.get(key_field) if isinstance(value, Mapping) else None
    return key if isinstance(key, str) else None


def _surplus_item(kind: str, key_name: str, surplus: _Surplus) -> dict[str, Any]:
    return {"kind": kind, "index": surplus.index, key_name: surplus.key, "reason": surplus.reason}


# ------------------------------------------------------------------------------- the flow's shape
def _selectors(flow: Mapping[str, Any], path: _Path) -> Sequence[Any]:
    depth, node = _walk(flow, path)
    return node if depth == len(path) else []


def _walk(flow: Mapping[str, Any], path: _Path) -> tuple[int, Any]:
    """How many leading keys of the path the flow has, each holding the container the next key
    needs (a list for an index or for the selectors, an object otherwise), and the node reached."""
    node: Any = flow
    for depth, key in enumerate(path):
        child = _child(node, key)
        last = depth + 1 == len(path)
        if not isinstance(child, list if last or isinstance(path[depth + 1], int) else Mapping):
            return depth, node
        node = child
    return len(path), node


def _child(node: Any, key: str | int) -> Any:
    if isinstance(key, int):
        return node[key] if isinstance(node, list) and key < len(node) else _ABSENT
    return node.get(key, _ABSENT) if isinstance(node, Mapping) else _ABSENT


def _append_operations(
    flow: Mapping[str, Any], additions: Sequence[tuple[_Path, list[dict[str, Any]]]]
) -> list[dict[str, Any]]:
    """Append each list's new selectors, creating the part of its container the flow lacks
    (a new-style flow has no profileSelectors). Both lists share their first keys: when both lack
    the same part, one operation creates it with both lists, as a second would overwrite the first."""
    operations: list[dict[str, Any]] = []
    created: dict[str, dict[str, Any]] = {}  # container-creating operations by pointer
    for path, selectors in additions:
        if not selectors:
            continue
        depth, node = _walk(flow, path)
        if depth == len(path):
            operations += [{"op": "add", "path": f"{_pointer(path)}/-", "value": s} for s in selectors]
            continue
        pointer = _pointer(path[: depth + 1])
        value = _nest(path[depth + 1 :], selectors)
        if pointer in created:
            _merge(created[pointer]["value"], value)
            continue
        # A key holding something else (null, a string) is replaced; one the flow lacks is added.
        op = "add" if _child(node, path[depth]) is _ABSENT else "replace"
        created[pointer] = {"op": op, "path": pointer, "value": value}
        operations.append(created[pointer])
    return operations


def _nest(path: _Path, selectors: list[dict[str, Any]]) -> Any:
    """The selectors inside new containers for the rest of their path."""
    value: Any = selectors
    for key in reversed(path):
        value = [value] if isinstance(key, int) else {key: value}
    return value


def _merge(target: Any, addition: Any) -> None:
    if isinstance(target, list):  # a new transformations list: one element each
        _merge(target[0], addition[0])
        return
    for key, value in addition.items():
        if key in target:
            _merge(target[key], value)
        else:
            target[key] = value


def _pointer(path: _Path) -> str:
    return "".join(f"/{key}" for key in path)
