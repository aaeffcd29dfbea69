"""A person's edit of a flow in Adobe's UI, as the admin API describes it (``POST /_emulator/flows/{id}/edit``),
turned into what the UI sends Flow Service.

Adobe's UI is a Flow Service client like any other (flow-service.md Part 1.3, Part 3 §3.1): to save the
changes a person made to a destination dataflow it sends one JSON Patch under the etag of the flow it read,
and it enables or disables the flow with the flow action. The admin call names the change as a person makes
it (audiences by id, attributes by path), :func:`patch_operations` writes the JSON Patch the UI would send for
the flow as it is now, and :meth:`~flowservice_emulator.resources.ResourceService.edit_flow_as_person` applies
it through the code path of any PATCH.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .jsoncopy import json_copy

JsonObject = dict[str, Any]

UI_CLIENT_ID: Final = "exc_app"  # the client id of Adobe's Experience Cloud UI
# A person's IMS user id, in the form createdBy/updatedBy show one (flow-service.md Part 2 §4.2: "x@AdobeID").
UI_PERSON: Final = "5A1F0C2B3D4E5F60718293A4@AdobeID"
STATE_ACTIONS: Final = {"enabled": "enable", "disabled": "disable"}  # the flow action that reaches each state

# Where Adobe's documents address a flow's selectors: in its first (GeneralTransform) transformation.
_PARAMS: Final = "/transformations/0/params"
_SEGMENTS: Final = "segmentSelectors"
_PROFILES: Final = "profileSelectors"
# For an audience added without them, since Adobe documents no defaults of its UI: the file name of the
# Dest spec examples, and a full export every day after segment evaluation, from today.
DEFAULT_FILENAME_TEMPLATE: Final = "%DESTINATION_NAME%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%"
DEFAULT_EXPORT_MODE: Final = "DAILY_FULL_EXPORT"


class EditRefused(ValueError):
    """An edit the UI would not offer for the flow as it is now (an audience the flow does not hold, ...)."""


@dataclass(frozen=True)
class SegmentChange:
    """Fields of one audience's selector ``value`` to set: a dotted name reaches into an object
    (``schedule.frequency``), and ``None`` removes the field."""

    audience_id: str
    values: JsonObject


@dataclass(frozen=True)
class FlowEdit:
    """What a person changes, all saved at once: one PATCH, then the flow action if ``state`` changes."""

    person: str = UI_PERSON
    name: str | None = None
    add_segments: Sequence[JsonObject] = ()  # selector values, each with an "id"; defaults fill the rest
    remove_segments: Sequence[str] = ()  # audience ids
    change_segments: Sequence[SegmentChange] = ()
    add_attributes: Sequence[str] = ()  # profile attribute paths
    remove_attributes: Sequence[str] = ()
    patch: Sequence[JsonObject] = ()  # raw JSON Patch operations, sent after the ones above
    state: str | None = None  # "enabled" or "disabled"


def patch_operations(flow: JsonObject, edit: FlowEdit, today: dt.date | None = None) -> list[JsonObject]:
    """The JSON Patch the UI sends for ``edit`` on ``flow`` as it is now, in the order RFC 6902 applies it:
    per selector list, whole-selector replaces and then removes by index into the flow as read (removes in
    descending order, so that every index still names what it named when read), then appends; then the raw
    operations. Empty when only the state changes."""
    operations: list[JsonObject] = []
    if edit.name is not None:
        operations.append({"op": "replace", "path": "/name", "value": edit.name})
    operations += _container_operations(
        flow, [key for key, added in ((_SEGMENTS, edit.add_segments), (_PROFILES, edit.add_attributes)) if added]
    )
    if edit.add_segments or edit.remove_segments or edit.change_segments:
        operations += _segment_operations(flow, edit, today or dt.date.today())
    if edit.add_attributes or edit.remove_attributes:
        operations += _attribute_operations(flow, edit)
    return operations + [json_copy(operation) for operation in edit.patch]


def _segment_operations(flow: JsonObject, edit: FlowEdit, today: dt.date) -> list[JsonObject]:
    selectors = _selectors(flow, _SEGMENTS)
    at = _indexes(selectors, "id")
    changed = [change.audience_id for change in edit.change_segments]
    added = [str(value.get("id")) for value in edit.add_segments]
    _refuse(_duplicates(changed), "changed twice in one edit")
    _refuse(sorted(set(edit.remove_segments) & set(changed)), "both removed and changed")
    _refuse([a for a in [*edit.remove_segments, *changed] if a not in at], "not in the flow")
    _refuse(_duplicates(added), "added twice in one edit")
    _refuse([a for a in added if a in at and a not in edit.remove_segments], "already in the flow")
    base = f"{_PARAMS}/{_SEGMENTS}/selectors"
    operations = [
        {"op": "replace", "path": f"{base}/{index}", "value": _changed(selectors[index], change.values)}
        for change in edit.change_segments
        for index in at[change.audience_id]
    ]
    operations += _removes(base, selectors, (index for a in set(edit.remove_segments) for index in at[a]))
    operations += [
        {"op": "add", "path": f"{base}/-", "value": _new_audience(value, today)} for value in edit.add_segments
    ]
    return operations


def _attribute_operations(flow: JsonObject, edit: FlowEdit) -> list[JsonObject]:
    selectors = _selectors(flow, _PROFILES)
    at = _indexes(selectors, "path")
    _refuse([path for path in edit.remove_attributes if path not in at], "not in the flow")
    _refuse(_duplicates(edit.add_attributes), "added twice in one edit")
    _refuse([p for p in edit.add_attributes if p in at and p not in edit.remove_attributes], "already in the flow")
    base = f"{_PARAMS}/{_PROFILES}/selectors"
    operations = _removes(base, selectors, (index for path in set(edit.remove_attributes) for index in at[path]))
    operations += [
        {"op": "add", "path": f"{base}/-", "value": {"type": "JSON_PATH", "value": {"path": p, "operator": "EXISTS"}}}
        for p in edit.add_attributes
    ]
    return operations


def _removes(base: str, selectors: list[Any], indexes: Iterable[int]) -> list[JsonObject]:
    # Both documents require a value even for a remove; the UI sends the selector it removes.
    return [
        {"op": "remove", "path": f"{base}/{index}", "value": json_copy(selectors[index])}
        for index in sorted(set(indexes), reverse=True)
    ]


def _container_operations(flow: JsonObject, keys: list[str]) -> list[JsonObject]:
    """The adds that create the selector lists an append needs and the flow lacks (one for ``params``
    itself if it is missing: a second add of it would replace the first)."""
    if not keys:
        return []
    transformations = flow.get("transformations")
    if not isinstance(transformations, list) or not transformations or not isinstance(transformations[0], dict):
        raise EditRefused("the flow has no transformations to hold audiences or attributes (a dataset export?)")
    params = transformations[0].get("params")
    if not isinstance(params, dict):
        return [{"op": "add", "path": _PARAMS, "value": {key: {"selectors": []} for key in keys}}]
    operations: list[JsonObject] = []
    for key in keys:
        container = params.get(key)
        if not isinstance(container, dict):
            operations.append({"op": "add", "path": f"{_PARAMS}/{key}", "value": {"selectors": []}})
        elif not isinstance(container.get("selectors"), list):
            operations.append({"op": "add", "path": f"{_PARAMS}/{key}/selectors", "value": []})
    return operations


def _changed(selector: JsonObject, values: JsonObject) -> JsonObject:
    """The whole selector with ``values`` set: a change is a replace of the selector read (Part 3 §3.1),
    so its server fields (createTime, updateTime) go back as they were read."""
    changed = json_copy(selector)
    value: JsonObject = changed["value"]
    for name, new in values.items():
        *parents, leaf = name.split(".")
        if "" in (*parents, leaf):
            raise EditRefused(f"'{name}' is not a field name (dotted names reach into objects)")
        if name == "id":
            raise EditRefused("an audience's id cannot change: remove it and add the other one")
        node = value
        for key in parents:
            child = node.get(key)
            if not isinstance(child, dict):
                child = node[key] = {}
            node = child
        if new is None:
            node.pop(leaf, None)
        else:
            node[leaf] = json_copy(new)
    return changed


def _new_audience(value: JsonObject, today: dt.date) -> JsonObject:
    defaults: JsonObject = {
        "filenameTemplate": DEFAULT_FILENAME_TEMPLATE,
        "exportMode": DEFAULT_EXPORT_MODE,
        "schedule": {"frequency": "DAILY", "triggerType": "AFTER_SEGMENT_EVAL", "startDate": today.isoformat()},
    }
    return {"type": "PLATFORM_SEGMENT", "value": defaults | json_copy(value)}


def _selectors(flow: JsonObject, key: str) -> list[Any]:
    transformations = flow.get("transformations")
    if not isinstance(transformations, list) or not transformations or not isinstance(transformations[0], dict):
        return []
    params = transformations[0].get("params")
    container = params.get(key) if isinstance(params, dict) else None
    selectors = container.get("selectors") if isinstance(container, dict) else None
    return selectors if isinstance(selectors, list) else []


def _indexes(selectors: list[Any], key: str) -> dict[str, list[int]]:
    """Where each audience id (``key`` "id") or attribute path (``key`` "path") is in ``selectors``."""
    found: dict[str, list[int]] = {}
    for index, selector in enumerate(selectors):
        value = selector.get("value") if isinstance(selector, dict) else None
        name = value.get(key) if isinstance(value, dict) else None
        if isinstance(name, str):
            found.setdefault(name, []).append(index)
    return found


def _duplicates(items: Iterable[str]) -> list[str]:
    return sorted(item for item, count in Counter(items).items() if count > 1)


def _refuse(culprits: list[str], why: str) -> None:
    if culprits:
        raise EditRefused(f"{', '.join(culprits)}: {why}")
