"""The diff engine of contract §10/§13: one JSON Patch converges any flow Adobe may hold (its own
fields added, people's edits, duplicates, foreign selectors, missing containers) on the desired
state, means the same applied in sequence or against the document read, and is empty once there."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import jsonpatch
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain import steps
from app.domain.flow_diff import (
    PROFILE_SELECTORS,
    SEGMENT_SELECTORS,
    DesiredFlow,
    differences,
    plan_update,
)
from flowservice_emulator.resources import _enrich_selectors

# Few ids and paths, so that current and desired overlap and duplicates are common.
IDS = [f"{n}1111111-2222-3333-4444-555555555555" for n in "abcdef"]
PATHS = ["person.name.firstName", "person.name.lastName", "personalEmail.address", "homeAddress.city", "mobile.number"]
SCHEDULES = [
    {"frequency": "ONCE", "triggerType": "AFTER_SEGMENT_EVAL", "startDate": "2026-12-01"},
    {"frequency": "DAILY", "triggerType": "SCHEDULED", "startDate": "2026-12-01", "startTime": "23:00"},
    {"frequency": "DAILY", "triggerType": "SCHEDULED", "startDate": "2026-12-02", "startTime": "23:00"},
]
TEMPLATES = ["%DESTINATION_NAME%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%", "%SEGMENT_ID%_%DESTINATION_NAME%"]
FAST = settings(max_examples=150, deadline=None, database=None)


def audience(id_: str, **fields: Any) -> dict[str, Any]:
    """A normalized desired audience (schemas.Segment.normalized)."""
    base = {
        "id": id_,
        "name": id_,
        "description": "",
        "exportMode": "DAILY_FULL_EXPORT",
        "schedule": SCHEDULES[0],
        "filenameTemplate": TEMPLATES[0],
    }
    return base | fields


def stored(value: dict[str, Any], created: str = "1658344069") -> dict[str, Any]:
    """An audience selector as Adobe stores it."""
    return {"type": "PLATFORM_SEGMENT", "value": {**value, "createTime": created, "updateTime": "1658427026"}}


def attribute(path: str) -> dict[str, Any]:
    """A profile selector as Adobe stores it."""
    mapping = {"sourceType": "text/x.schema-path", "source": path, "destination": path, "identity": False}
    return {"type": "JSON_PATH", "value": {"path": path, "operator": "EXISTS", "mapping": mapping}}


def flow(segments: list[Any] | None = None, profiles: list[Any] | None = None, name: str = "flow") -> dict[str, Any]:
    params: dict[str, Any] = {}
    if segments is not None:
        params["segmentSelectors"] = {"selectors": segments}
    if profiles is not None:
        params["profileSelectors"] = {"selectors": profiles, "mandatoryFields": [], "primaryFields": []}
    return {"id": "f", "name": name, "etag": '"1"', "transformations": [{"name": "GeneralTransform", "params": params}]}


def at(document: dict[str, Any], pointer: str) -> Any:
    return jsonpatch.JsonPointer(pointer).resolve(document)


# ------------------------------------------------------------------------------------ strategies
desired_audiences = st.builds(
    audience,
    st.sampled_from(IDS),
    name=st.sampled_from(["Spring", "Summer"]),
    description=st.sampled_from(["", "VIPs"]),
    exportMode=st.sampled_from(["DAILY_FULL_EXPORT", "FIRST_FULL_THEN_INCREMENTAL"]),
    schedule=st.sampled_from(SCHEDULES),
    filenameTemplate=st.sampled_from(TEMPLATES),
)
desired_flows = st.builds(
    lambda segments, attributes, name: DesiredFlow(tuple(segments), tuple(attributes), name),
    st.lists(desired_audiences, max_size=5, unique_by=lambda s: s["id"]),
    st.lists(st.sampled_from(PATHS), max_size=4, unique=True),
    st.sampled_from([None, "flow", "renamed"]),
)

adobe_fields = st.fixed_dictionaries(
    {},
    optional={
        "createTime": st.sampled_from(["1658344069", "1700000000"]),
        "updateTime": st.sampled_from(["1658427026", "1700000001"]),
        "adobeOnly": st.just({"nested": [1, 2]}),
    },
)
# Selector-level keys other than type and value, which a replace keeps too.
selector_keys = st.sampled_from([{}, {"selectorNote": "kept"}])
# An audience as someone may have edited it in Adobe's UI: one of its fields set again.
edits = st.one_of(
    st.just({}),
    st.builds(dict, name=st.sampled_from(["Spring", "Autumn"])),
    st.builds(dict, description=st.sampled_from(["", "edited"])),
    st.builds(dict, exportMode=st.sampled_from(["DAILY_FULL_EXPORT", "FIRST_FULL_THEN_INCREMENTAL"])),
    st.builds(dict, schedule=st.sampled_from(SCHEDULES)),
    st.builds(dict, filenameTemplate=st.sampled_from(TEMPLATES)),
)
garbage = st.sampled_from(
    [
        None,
        "PLATFORM_SEGMENT",
        {},
        {"type": "PLATFORM_SEGMENT"},
        {"type": "PLATFORM_SEGMENT", "value": None},
        {"type": "PLATFORM_SEGMENT", "value": {"id": 7}},
        {"type": "PLATFORM_SEGMENT", "value": {"name": "no id"}},
        {"type": "JSON_PATH", "value": {"path": PATHS[0]}},  # an attribute among the audiences
        {"type": "JSON_PATH", "value": {"id": IDS[0]}},
        {"value": {"id": IDS[1]}},
    ]
)
garbage_attributes = st.sampled_from(
    [None, {}, {"type": "JSON_PATH", "value": {}}, {"type": "PLATFORM_SEGMENT", "value": {"path": PATHS[1]}}]
)


def stored_audience(segment: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.builds(
        lambda edit, extra, keys: {**keys, "type": "PLATFORM_SEGMENT", "value": {**segment, **edit, **extra}},
        edits,
        adobe_fields,
        selector_keys,
    )


def stored_attribute(path: str) -> st.SearchStrategy[dict[str, Any]]:
    return st.sampled_from([attribute(path), {"type": "JSON_PATH", "value": {"path": path, "operator": "NOT_EXISTS"}}])


def container(selectors: list[Any]) -> st.SearchStrategy[Any]:
    """A selector container as a flow may have it (shuffled, with Adobe's other keys), or not."""
    listed = st.permutations(selectors)
    return st.one_of(
        listed.map(lambda s: {"selectors": s, "mandatoryFields": ["personalEmail.address"]}),
        listed.map(lambda s: {"selectors": s}),
        st.sampled_from([None, {}, {"selectors": None}, "absent"]),
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[str, Any], DesiredFlow]:
    """A desired state, and a flow as Adobe may hold it: the desired entries zero, one or two times
    (some edited), others, strangers, in any order, in containers that may be missing."""
    desired = draw(desired_flows)
    copies = st.integers(0, 2)
    audiences = [draw(stored_audience(dict(s))) for s in desired.segments for _ in range(draw(copies))]
    audiences += draw(st.lists(st.one_of(desired_audiences.flatmap(stored_audience), garbage), max_size=4))
    attributes = [draw(stored_attribute(p)) for p in desired.attributes for _ in range(draw(copies))]
    attributes += draw(
        st.lists(st.one_of(st.sampled_from(PATHS).flatmap(stored_attribute), garbage_attributes), max_size=3)
    )
    params = {"segmentSelectors": draw(container(audiences)), "profileSelectors": draw(container(attributes))}
    params = {key: value for key, value in params.items() if value != "absent"}
    transformation = {"name": "GeneralTransform", "params": params}
    shapes = [[transformation]] * 4 + [[{"name": "GeneralTransform"}], [None], [], "absent"]
    transformations = draw(st.sampled_from(shapes))
    current: dict[str, Any] = {"id": "f", "name": draw(st.sampled_from(["flow", "renamed"])), "state": "enabled"}
    if transformations != "absent":
        current["transformations"] = transformations
    return current, desired


# ------------------------------------------------------------------------------------ checks
def selectors(document: dict[str, Any], pointer: str) -> list[Any]:
    try:
        found = at(document, pointer)
    except jsonpatch.JsonPointerException:
        return []
    return found if isinstance(found, list) else []


def first_occurrences(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The audience selector the engine keeps for each id: the first of its type with that id."""
    kept: dict[str, dict[str, Any]] = {}
    for selector in selectors(document, SEGMENT_SELECTORS):
        if not isinstance(selector, dict) or selector.get("type") != "PLATFORM_SEGMENT":
            continue
        value = selector.get("value")
        if isinstance(value, dict) and isinstance(value.get("id"), str):
            kept.setdefault(value["id"], selector)
    return kept


def phase(op: dict[str, Any]) -> int:
    """The rename, the replaces of audiences, the removes, the appends (container operations too)."""
    if op["path"] == "/name":
        return 0
    if op["op"] == "replace" and op["path"].startswith(f"{SEGMENT_SELECTORS}/"):
        return 1
    return 2 if op["op"] == "remove" else 3


def apply_against_original(document: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """A server that resolves every remove's index against the document it read: the replaces
    first, then all removed indices of a list at once, then the appends."""
    result = jsonpatch.apply_patch(document, [op for op in patch if phase(op) < 2])
    for pointer in (SEGMENT_SELECTORS, PROFILE_SELECTORS):
        gone = {int(op["path"].rsplit("/", 1)[1]) for op in patch if op["op"] == "remove" and pointer in op["path"]}
        if gone:
            listed = at(result, pointer)
            listed[:] = [selector for index, selector in enumerate(listed) if index not in gone]
    appended: dict[str, Any] = jsonpatch.apply_patch(result, [op for op in patch if phase(op) == 3])
    return appended


# ------------------------------------------------------------------------------------ properties
@FAST
@given(scenarios())
def test_the_plan_converges_and_keeps_adobes_fields(scenario: tuple[dict[str, Any], DesiredFlow]) -> None:
    current, desired = scenario
    original = copy.deepcopy(current)
    wanted = copy.deepcopy(desired.segments)
    patch = plan_update(current, desired)
    assert current == original  # pure
    patched = jsonpatch.apply_patch(current, patch)
    assert differences(patched, desired) == []
    audiences = selectors(patched, SEGMENT_SELECTORS)
    assert sorted(s["value"]["id"] for s in audiences) == sorted(s["id"] for s in desired.segments)
    paths = [s["value"]["path"] for s in selectors(patched, PROFILE_SELECTORS)]
    assert sorted(paths) == sorted(desired.attributes)
    # Every audience kept keeps what Adobe added to it, and the selector's other keys.
    before = first_occurrences(original)
    for selector in audiences:
        old = before.get(selector["value"]["id"])
        if old is not None:
            for key, value in old["value"].items():
                if key not in ("id", "name", "description", "exportMode", "schedule", "filenameTemplate"):
                    assert selector["value"][key] == value
            assert selector.get("selectorNote") == old.get("selectorNote")
    # The patch is an independent object: mutating it leaves the inputs alone.
    for op in patch:
        if isinstance(op.get("value"), dict):
            op["value"].clear()
    assert current == original
    assert desired.segments == wanted


@FAST
@given(scenarios())
def test_the_plan_means_the_same_against_the_original_document(scenario: tuple[dict[str, Any], DesiredFlow]) -> None:
    current, desired = scenario
    patch = plan_update(current, desired)
    assert apply_against_original(current, patch) == jsonpatch.apply_patch(current, patch)


@FAST
@given(scenarios())
def test_planning_again_is_empty(scenario: tuple[dict[str, Any], DesiredFlow]) -> None:
    current, desired = scenario
    patched = jsonpatch.apply_patch(current, plan_update(current, desired))
    assert plan_update(patched, desired) == []
    # And the two functions agree on any flow.
    assert (plan_update(current, desired) == []) == (differences(current, desired) == [])


@FAST
@given(desired_flows, st.randoms(use_true_random=False), adobe_fields)
def test_an_equal_flow_in_any_order_needs_nothing(desired: DesiredFlow, random: Any, extra: dict[str, Any]) -> None:
    audiences = [{"type": "PLATFORM_SEGMENT", "value": {**segment, **extra}} for segment in desired.segments]
    attributes = [attribute(path) for path in desired.attributes]
    random.shuffle(audiences)
    random.shuffle(attributes)
    current = flow(audiences, attributes, name=desired.name or "anything")
    assert plan_update(current, desired) == []
    assert differences(current, desired) == []


@FAST
@given(scenarios())
def test_the_operations_come_in_phases_and_removes_descend(scenario: tuple[dict[str, Any], DesiredFlow]) -> None:
    current, desired = scenario
    patch = plan_update(current, desired)
    assert [phase(op) for op in patch] == sorted(phase(op) for op in patch)
    for pointer in (SEGMENT_SELECTORS, PROFILE_SELECTORS):
        removed = [int(op["path"].rsplit("/", 1)[1]) for op in patch if op["op"] == "remove" and pointer in op["path"]]
        assert all(a > b for a, b in itertools.pairwise(removed))
    # Adobe's documents mark a remove's value required: a typed, empty selector.
    assert all(op["value"]["value"] == {} and op["value"]["type"] for op in patch if op["op"] == "remove")


# ------------------------------------------------------------------------------------ examples
def test_the_pointers_are_the_steps() -> None:
    assert (SEGMENT_SELECTORS, PROFILE_SELECTORS) == (steps.SEGMENT_SELECTORS, steps.PROFILE_SELECTORS)


def test_adding_to_a_new_flow() -> None:
    desired = DesiredFlow((audience(IDS[0]),), (PATHS[0],))
    assert plan_update(flow([], []), desired) == [
        {
            "op": "add",
            "path": f"{SEGMENT_SELECTORS}/-",
            "value": {"type": "PLATFORM_SEGMENT", "value": audience(IDS[0])},
        },
        {
            "op": "add",
            "path": f"{PROFILE_SELECTORS}/-",
            "value": {"type": "JSON_PATH", "value": {"path": PATHS[0], "operator": "EXISTS"}},
        },
    ]
    assert differences(flow([], []), desired) == [
        {"kind": "audience-missing", "id": IDS[0]},
        {"kind": "attribute-missing", "path": PATHS[0]},
    ]


def test_removing_goes_from_the_last_index_down() -> None:
    current = flow([stored(audience(i)) for i in IDS[:3]], [attribute(p) for p in PATHS[:3]])
    desired = DesiredFlow((audience(IDS[1]),), (PATHS[0],))
    assert plan_update(current, desired) == [
        {"op": "remove", "path": f"{SEGMENT_SELECTORS}/2", "value": {"type": "PLATFORM_SEGMENT", "value": {}}},
        {"op": "remove", "path": f"{SEGMENT_SELECTORS}/0", "value": {"type": "PLATFORM_SEGMENT", "value": {}}},
        {"op": "remove", "path": f"{PROFILE_SELECTORS}/2", "value": {"type": "JSON_PATH", "value": {}}},
        {"op": "remove", "path": f"{PROFILE_SELECTORS}/1", "value": {"type": "JSON_PATH", "value": {}}},
    ]
    assert differences(current, desired) == [
        {"kind": "audience-surplus", "index": 0, "id": IDS[0], "reason": "not-desired"},
        {"kind": "audience-surplus", "index": 2, "id": IDS[2], "reason": "not-desired"},
        {"kind": "attribute-surplus", "index": 1, "path": PATHS[1], "reason": "not-desired"},
        {"kind": "attribute-surplus", "index": 2, "path": PATHS[2], "reason": "not-desired"},
    ]


def test_a_changed_schedule_replaces_the_whole_selector_keeping_adobes_times() -> None:
    current = flow([stored(audience(IDS[0])), stored(audience(IDS[1]), created="1600000000")], [])
    desired = DesiredFlow((audience(IDS[0]), audience(IDS[1], schedule=SCHEDULES[1])), ())
    value = stored(audience(IDS[1]), created="1600000000")["value"] | {"schedule": SCHEDULES[1]}
    expected = {"type": "PLATFORM_SEGMENT", "value": value}
    assert plan_update(current, desired) == [{"op": "replace", "path": f"{SEGMENT_SELECTORS}/1", "value": expected}]
    assert differences(current, desired) == [
        {"kind": "audience-changed", "id": IDS[1], "index": 1, "fields": ["schedule"]}
    ]


def test_another_order_is_no_change() -> None:
    current = flow([stored(audience(i)) for i in reversed(IDS[:3])], [attribute(p) for p in reversed(PATHS[:2])])
    desired = DesiredFlow(tuple(audience(i) for i in IDS[:3]), tuple(PATHS[:2]), name="flow")
    assert plan_update(current, desired) == []
    assert differences(current, desired) == []


def test_a_foreign_selector_added_out_of_band_is_removed() -> None:
    foreign = {"type": "SOMETHING_ELSE", "value": {"id": IDS[1]}}
    current = flow([stored(audience(IDS[0])), foreign], [])
    desired = DesiredFlow((audience(IDS[0]), audience(IDS[1])), ())
    assert plan_update(current, desired) == [
        {"op": "remove", "path": f"{SEGMENT_SELECTORS}/1", "value": {"type": "SOMETHING_ELSE", "value": {}}},
        {
            "op": "add",
            "path": f"{SEGMENT_SELECTORS}/-",
            "value": {"type": "PLATFORM_SEGMENT", "value": audience(IDS[1])},
        },
    ]
    assert differences(current, desired) == [
        {"kind": "audience-missing", "id": IDS[1]},
        {"kind": "audience-surplus", "index": 1, "id": IDS[1], "reason": "unrecognized"},
    ]


def test_a_duplicate_keeps_the_first_and_replaces_it_if_changed() -> None:
    current = flow([stored(audience(IDS[0]), created="1"), stored(audience(IDS[0]), created="2")], [])
    desired = DesiredFlow((audience(IDS[0], name="New"),), ())
    patch = plan_update(current, desired)
    assert [(op["op"], op["path"]) for op in patch] == [
        ("replace", f"{SEGMENT_SELECTORS}/0"),
        ("remove", f"{SEGMENT_SELECTORS}/1"),
    ]
    assert patch[0]["value"]["value"]["createTime"] == "1"
    assert [d["kind"] for d in differences(current, desired)] == ["audience-changed", "audience-surplus"]
    assert differences(current, desired)[1]["reason"] == "duplicate"


def test_a_name_change() -> None:
    current = flow([], [], name="old")
    assert plan_update(current, DesiredFlow((), (), name="new")) == [{"op": "replace", "path": "/name", "value": "new"}]
    assert differences(current, DesiredFlow((), (), name="new")) == [
        {"kind": "name-changed", "expected": "new", "actual": "old"}
    ]
    assert plan_update(current, DesiredFlow((), ())) == []  # no name: left alone


def test_a_flow_without_profile_selectors_gets_the_container() -> None:
    current = flow([stored(audience(IDS[0]))], None)
    assert plan_update(current, DesiredFlow((audience(IDS[0]),), (PATHS[0],))) == [
        {
            "op": "add",
            "path": "/transformations/0/params/profileSelectors",
            "value": {"selectors": [{"type": "JSON_PATH", "value": {"path": PATHS[0], "operator": "EXISTS"}}]},
        }
    ]
    assert plan_update(current, DesiredFlow((audience(IDS[0]),), ())) == []  # nothing to add: nothing to create


def test_both_containers_missing_at_once_are_created_in_one_operation() -> None:
    current = {"id": "f", "name": "flow", "transformations": [{"name": "GeneralTransform"}]}
    desired = DesiredFlow((audience(IDS[0]),), (PATHS[0],))
    patch = plan_update(current, desired)
    assert [(op["op"], op["path"]) for op in patch] == [("add", "/transformations/0/params")]
    assert differences(jsonpatch.apply_patch(current, patch), desired) == []


def test_what_the_emulator_adds_is_ignored() -> None:
    desired = DesiredFlow((audience(IDS[0]), audience(IDS[1])), tuple(PATHS[:2]))
    patched = jsonpatch.apply_patch(flow([], []), plan_update(flow([], []), desired))
    _enrich_selectors(patched, None)
    assert "createTime" in at(patched, SEGMENT_SELECTORS)[0]["value"]
    assert "mapping" in at(patched, PROFILE_SELECTORS)[0]["value"]
    assert differences(patched, desired) == []


@pytest.mark.parametrize(
    "desired",
    [
        lambda: DesiredFlow((audience(IDS[0]), audience(IDS[0])), ()),
        lambda: DesiredFlow((), (PATHS[0], PATHS[0])),
        lambda: DesiredFlow(({"name": "no id"},), ()),
        lambda: DesiredFlow(({**audience(IDS[0]), "createTime": "1"},), ()),
    ],
)
def test_a_desired_state_that_could_never_converge_is_refused(desired: Any) -> None:
    with pytest.raises(ValueError):
        desired()
