"""Request-body rules of Flow Service (flow-service.md Part 2 §3, §7, §8.1).

Each ``check_*`` function validates a create body (or a patched document, which must satisfy the same
rules) and raises :class:`~flowservice_emulator.errors.ApiError` with Adobe's code for the first problem.
They only read state through ``Lookup`` so they can be reused after a PATCH. Catalog specs are read without
copying them: the specs these functions return are the catalog's own, not to be mutated.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Final

from . import schema_check
from .catalog import DATA_LAKE, PROFILE_STORE, SPEC_VERSION, Catalog
from .errors import ApiError, FlowCode, flow_error, missing_field

JsonObject = dict[str, Any]
Lookup = Callable[[str, str], JsonObject | None]  # (kind, id) -> stored document in the caller's sandbox

EXPORT_MODE_FREQUENCIES: Final[dict[str, frozenset[str]]] = {
    # WEEKLY and MONTHLY for full exports come from the 2026 Experience League page (§8.1).
    "DAILY_FULL_EXPORT": frozenset({"ONCE", "DAILY", "WEEKLY", "MONTHLY"}),
    "FIRST_FULL_THEN_INCREMENTAL": frozenset(
        {"DAILY", "EVERY_3_HOURS", "EVERY_6_HOURS", "EVERY_8_HOURS", "EVERY_12_HOURS"}
    ),
}
TRIGGER_TYPES: Final = frozenset({"SCHEDULED", "AFTER_SEGMENT_EVAL"})
REQUIRED_MACROS: Final = ("%DESTINATION_NAME%", "%SEGMENT_ID%")
_HH_MM: Final = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

INVALID_SPEC_MESSAGE: Final = "Please provide a valid spec id"


def require(body: JsonObject, *names: str, where: str = "") -> None:
    """Missing required fields give 422, as the Dest spec documents for a missing connectionSpec.version
    (:func:`~flowservice_emulator.errors.missing_field`); after a PATCH they become 1455-400."""
    for name in names:
        value = body.get(name)
        if value is None or value == "":
            label = f"{where}.{name}" if where else name
            raise missing_field(f"Required field '{label}' is missing.")


def invalid(message: str) -> ApiError:
    return flow_error(FlowCode.INVALID_FIELD, message)


def check_spec_ref(body: JsonObject, field: str, known: Callable[[str], JsonObject | None]) -> JsonObject:
    """Validate ``{field: {id, version}}`` and return the referenced catalog spec."""
    require(body, field)
    ref = body[field]
    if not isinstance(ref, dict):
        raise invalid(f"Field '{field}' must be an object with 'id' and 'version'.")
    require(ref, "id", "version", where=field)
    spec = known(str(ref["id"]))
    if spec is None or ref["version"] != SPEC_VERSION:
        # The Dest spec example body for this case is {"message": ...}; the emulator sends the current error
        # format and keeps that key so that clients reading either shape understand it.
        raise flow_error(
            FlowCode.INVALID_SPEC,
            f"{INVALID_SPEC_MESSAGE}: no {field} with id '{ref['id']}' and version '{ref['version']}'.",
            extra={"message": INVALID_SPEC_MESSAGE},
        )
    return spec


def check_name(body: JsonObject) -> None:
    require(body, "name")
    if not isinstance(body["name"], str):
        raise invalid("Field 'name' must be a string.")


def check_connection(body: JsonObject, catalog: Catalog) -> JsonObject:
    check_name(body)
    spec = check_spec_ref(body, "connectionSpec", catalog.connection_spec_readonly)
    auth_specs: list[JsonObject] = spec.get("authSpec", [])
    auth = body.get("auth")
    if auth is None:
        if auth_specs:
            raise missing_field(
                f"Required field 'auth' is missing: connection spec '{spec['name']}' needs one of "
                f"the auth specs {[a['name'] for a in auth_specs]}."
            )
        return spec
    if not isinstance(auth, dict):
        raise invalid("Field 'auth' must be an object with 'specName' and 'params'.")
    require(auth, "specName", where="auth")
    auth_spec = catalog.auth_spec_readonly(spec["id"], str(auth["specName"]))
    if auth_spec is None:
        raise flow_error(
            FlowCode.AUTH_SPEC_NOT_FOUND,
            f"Auth spec name '{auth['specName']}' is not found for connection spec '{spec['id']}'. "
            f"Valid names: {[a['name'] for a in auth_specs]}.",
        )
    params = auth.get("params", {})
    if not isinstance(params, dict):
        raise invalid("Field 'auth.params' must be an object.")
    problems = schema_check.check(params, auth_spec["spec"], "auth.params")
    if problems:
        raise invalid(f"Connection auth params are invalid for '{auth['specName']}': {'; '.join(problems)}.")
    return spec


def check_source_connection(body: JsonObject, catalog: Catalog, lookup: Lookup) -> JsonObject:
    check_name(body)
    spec = check_spec_ref(body, "connectionSpec", catalog.connection_spec_readonly)
    for field in ("data", "params"):
        if body.get(field) is not None and not isinstance(body[field], dict):
            raise invalid(f"Field '{field}' must be an object.")
    if body.get("baseConnectionId") is not None:
        check_base_connection(body, spec, lookup)
    return spec


def check_target_connection(body: JsonObject, catalog: Catalog, lookup: Lookup) -> JsonObject:
    check_name(body)
    require(body, "baseConnectionId", "params")
    spec = check_spec_ref(body, "connectionSpec", catalog.connection_spec_readonly)
    target_spec = spec.get("targetSpec")
    if target_spec is None:
        raise invalid(f"Connection spec '{spec['name']}' is not a destination: it has no targetSpec.")
    check_base_connection(body, spec, lookup)
    params = body["params"]
    if not isinstance(params, dict):
        raise invalid("Field 'params' must be an object.")
    problems = schema_check.check(params, target_spec["spec"], "params")
    if problems:
        raise invalid(f"Target connection params are invalid: {'; '.join(problems)}.")
    return spec


def check_base_connection(body: JsonObject, spec: JsonObject, lookup: Lookup) -> JsonObject:
    base_id = str(body["baseConnectionId"])
    base = lookup("connections", base_id)
    if base is None:
        raise invalid(f"Base connection '{base_id}' does not exist in this sandbox.")
    if base["connectionSpec"]["id"] != spec["id"]:
        raise invalid(
            f"Base connection '{base_id}' has connection spec '{base['connectionSpec']['id']}', not '{spec['id']}'."
        )
    return base


def check_flow(body: JsonObject, catalog: Catalog, lookup: Lookup) -> JsonObject:
    check_name(body)
    flow_spec = check_spec_ref(body, "flowSpec", catalog.flow_spec_readonly)
    require(body, "sourceConnectionIds", "targetConnectionIds")
    source_specs = _check_connection_ids(
        body, "sourceConnectionIds", "sourceConnections", flow_spec["sourceConnectionSpecIds"], lookup
    )
    _check_connection_ids(
        body, "targetConnectionIds", "targetConnections", flow_spec["targetConnectionSpecIds"], lookup
    )
    # Audience flows (from the Profile store) need transformations; dataset exports need scheduleParams.
    if PROFILE_STORE in source_specs:
        require(body, "transformations")
    if DATA_LAKE in source_specs:
        require(body, "scheduleParams")
    transformations = body.get("transformations")
    if transformations is not None:
        problems = transformation_problems(transformations)
        if problems:
            raise invalid(f"Invalid transformations: {'; '.join(problems)}.")
    if body.get("scheduleParams") is not None and not isinstance(body["scheduleParams"], dict):
        raise invalid("Field 'scheduleParams' must be an object.")
    return flow_spec


def _check_connection_ids(
    body: JsonObject, field: str, kind: str, allowed_specs: list[str], lookup: Lookup
) -> set[str]:
    ids = body[field]
    if not isinstance(ids, list) or not ids or not all(isinstance(item, str) for item in ids):
        raise invalid(f"Field '{field}' must be a non-empty array of ids.")
    specs: set[str] = set()
    for resource_id in ids:
        connection = lookup(kind, resource_id)
        if connection is None:
            raise invalid(f"{kind} resource '{resource_id}' in '{field}' does not exist in this sandbox.")
        spec_id = connection["connectionSpec"]["id"]
        if spec_id not in allowed_specs:
            raise invalid(
                f"{kind} resource '{resource_id}' has connection spec '{spec_id}', which the flow spec "
                f"does not allow (allowed: {allowed_specs})."
            )
        specs.add(spec_id)
    return specs


def transformation_problems(transformations: Any) -> list[str]:
    if not isinstance(transformations, list):
        return ["'transformations' must be an array"]
    problems: list[str] = []
    for index, transformation in enumerate(transformations):
        where = f"transformations[{index}]"
        if not isinstance(transformation, dict) or not isinstance(transformation.get("name"), str):
            problems.append(f"{where} must be an object with a 'name'")
            continue
        params = transformation.get("params", {})
        if not isinstance(params, dict):
            problems.append(f"{where}.params must be an object")
            continue
        problems += _selector_list_problems(params, "segmentSelectors", f"{where}.params", _segment_problems)
        problems += _selector_list_problems(params, "profileSelectors", f"{where}.params", _profile_problems)
    return problems


def _selector_list_problems(
    params: JsonObject, key: str, where: str, check: Callable[[Any, str], list[str]]
) -> list[str]:
    if key not in params:
        return []
    container = params[key]
    if not isinstance(container, dict) or not isinstance(container.get("selectors", []), list):
        return [f"{where}.{key} must be an object with a 'selectors' array"]
    problems: list[str] = []
    for index, selector in enumerate(container.get("selectors", [])):
        problems += check(selector, f"{where}.{key}.selectors[{index}]")
    return problems


def _segment_problems(selector: Any, where: str) -> list[str]:
    if not isinstance(selector, dict) or selector.get("type") != "PLATFORM_SEGMENT":
        return [f"{where}.type must be PLATFORM_SEGMENT"]
    value = selector.get("value")
    if not isinstance(value, dict):
        return [f"{where}.value must be an object"]
    problems = [] if isinstance(value.get("id"), str) and value["id"] else [f"{where}.value.id is required"]
    export_mode = value.get("exportMode")
    if export_mode not in EXPORT_MODE_FREQUENCIES:
        return [*problems, f"{where}.value.exportMode must be one of {sorted(EXPORT_MODE_FREQUENCIES)}"]
    template = value.get("filenameTemplate", value.get("fileNameTemplate"))
    if template is not None and not (isinstance(template, str) and all(m in template for m in REQUIRED_MACROS)):
        problems.append(f"{where}.value.filenameTemplate must contain {' and '.join(REQUIRED_MACROS)}")
    schedule = value.get("schedule")
    if not isinstance(schedule, dict):
        return [*problems, f"{where}.value.schedule is required"]
    return problems + _schedule_problems(schedule, export_mode, f"{where}.value.schedule")


def _schedule_problems(schedule: JsonObject, export_mode: str, where: str) -> list[str]:
    problems: list[str] = []
    frequency = schedule.get("frequency")
    allowed = EXPORT_MODE_FREQUENCIES[export_mode]
    if frequency not in allowed:
        problems.append(f"{where}.frequency must be one of {sorted(allowed)} with exportMode {export_mode}")
    trigger = schedule.get("triggerType")
    start_time = schedule.get("startTime")
    if trigger is not None and trigger not in TRIGGER_TYPES:
        problems.append(f"{where}.triggerType must be one of {sorted(TRIGGER_TYPES)}")
    if trigger == "SCHEDULED" and start_time is None:
        problems.append(f"{where}.startTime is required when triggerType is SCHEDULED")
    if trigger == "AFTER_SEGMENT_EVAL" and start_time is not None:
        problems.append(f"{where}.startTime is not allowed when triggerType is AFTER_SEGMENT_EVAL")
    if start_time is not None and not (isinstance(start_time, str) and _HH_MM.match(start_time)):
        problems.append(f"{where}.startTime must be HH:mm (UTC)")
    dates = {name: _date(schedule.get(name)) for name in ("startDate", "endDate")}
    for name, parsed in dates.items():
        if schedule.get(name) is not None and parsed is None:
            problems.append(f"{where}.{name} must be a date YYYY-MM-DD")
    if schedule.get("endDate") is not None and export_mode == "DAILY_FULL_EXPORT" and frequency == "ONCE":
        problems.append(f"{where}.endDate does not apply to a DAILY_FULL_EXPORT with frequency ONCE")
    start, end = dates["startDate"], dates["endDate"]
    if start is not None and end is not None and end < start:
        problems.append(f"{where}.endDate must not be before startDate")
    return problems


def _profile_problems(selector: Any, where: str) -> list[str]:
    if not isinstance(selector, dict) or selector.get("type") != "JSON_PATH":
        return [f"{where}.type must be JSON_PATH"]
    value = selector.get("value")
    if not isinstance(value, dict) or not isinstance(value.get("path"), str) or not value["path"]:
        return [f"{where}.value.path is required"]
    if value.get("operator", "EXISTS") != "EXISTS":
        return [f"{where}.value.operator must be EXISTS"]
    return []


def _date(value: Any) -> dt.date | None:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None
