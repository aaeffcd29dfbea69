"""A small JSON Schema evaluator for the catalog's auth and target specs.

The emulator checks ``auth.params`` and target ``params`` against the schemas it serves, the way Flow
Service does. Only the keywords the catalog uses are supported (type, enum, const, pattern, minimum,
maximum, required, properties, allOf, anyOf, if/then/else); a full validator (``jsonschema``) is not a
runtime dependency of the project.
"""

from __future__ import annotations

import re
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def check(instance: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    """Problems found in ``instance``; an empty list means it conforms."""
    problems: list[str] = []
    label = where or "value"

    expected = schema.get("type")
    if isinstance(expected, str) and not _is_type(instance, expected):
        return [f"{label} must be of type {expected}"]
    if "enum" in schema and instance not in schema["enum"]:
        problems.append(f"{label} must be one of {schema['enum']}")
    if "const" in schema and instance != schema["const"]:
        problems.append(f"{label} must be {schema['const']!r}")
    if isinstance(instance, str) and "pattern" in schema and not re.search(schema["pattern"], instance):
        problems.append(f"{label} does not match the pattern {schema['pattern']}")
    if isinstance(instance, int | float) and not isinstance(instance, bool):
        if "minimum" in schema and instance < schema["minimum"]:
            problems.append(f"{label} must be at least {schema['minimum']}")
        if "maximum" in schema and instance > schema["maximum"]:
            problems.append(f"{label} must be at most {schema['maximum']}")
    if isinstance(instance, dict):
        problems += _check_object(instance, schema, where)

    for sub in schema.get("allOf", []):
        problems += check(instance, sub, where)
    if "anyOf" in schema and all(check(instance, sub, where) for sub in schema["anyOf"]):
        alternatives = " or ".join(_describe(sub) for sub in schema["anyOf"])
        problems.append(f"{label} must satisfy {alternatives}")
    if "if" in schema and not check(instance, schema["if"], where):
        problems += check(instance, schema.get("then", {}), where)
    elif "if" in schema:
        problems += check(instance, schema.get("else", {}), where)
    return problems


def _check_object(instance: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    problems = [
        f"{_join(where, name)} is required" for name in schema.get("required", []) if instance.get(name) is None
    ]
    for name, sub in schema.get("properties", {}).items():
        if instance.get(name) is not None:
            problems += check(instance[name], sub, _join(where, name))
    return problems


def _is_type(instance: Any, expected: str) -> bool:
    if isinstance(instance, bool) and expected in ("integer", "number"):
        return False  # JSON booleans are not numbers, although Python's bool subclasses int.
    return isinstance(instance, _TYPES.get(expected, (object,)))


def _describe(schema: dict[str, Any]) -> str:
    if "required" in schema:
        return "required " + ", ".join(schema["required"])
    return "an alternative schema"


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
