"""What FastAPI cannot infer for generated clients: the bearer security scheme, the required
Idempotency-Key, the 500 problem every operation may answer, and examples. Applied to the generated
document (app/main.py), so route modules keep to behaviour."""

from __future__ import annotations

from typing import Any

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}

_ACTIVATION_ID = "3f0c2a9e-8d7b-4c1e-9a55-2b7d0e6f4a11"

CREATE_REQUEST_EXAMPLE: dict[str, Any] = {
    "destination": "Adobe Campaign",
    "sandbox": "prod",
    "name": "Spring newsletter",
    "storage": {
        "type": "s3",
        "accessId": "AKIAIOSFODNN7EXAMPLE",
        "secretKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "bucketName": "acme-aep-exports",
        "path": "campaign/spring",
    },
    "segments": [{"id": "72ddd79b-6b0a-4e97-a8d2-112ccd81bd02", "name": "Men over 50"}],
    "attributes": ["person.name.lastName", "personalEmail.address"],
}

_STEP_NAMES = (
    "resolve_destination",
    "create_source_base_connection",
    "create_source_connection",
    "create_target_base_connection",
    "create_target_connection",
    "create_flow",
    "activate_segments",
    "verify_flow",
)

ACTIVATION_EXAMPLE: dict[str, Any] = {
    "id": _ACTIVATION_ID,
    "status": "pending",
    "destination": {"name": "Adobe Campaign", "connectionSpecId": None, "flowSpecId": None},
    "sandbox": "prod",
    "name": "Spring newsletter",
    "storage": {"type": "s3", "bucketName": "acme-aep-exports", "path": "campaign/spring", "accessId": "AKIA…MPLE"},
    "segments": [
        {
            "id": "72ddd79b-6b0a-4e97-a8d2-112ccd81bd02",
            "name": "Men over 50",
            "description": "",
            "exportMode": "DAILY_FULL_EXPORT",
            "schedule": {"frequency": "ONCE", "triggerType": "AFTER_SEGMENT_EVAL", "startDate": "2026-12-01"},
            "filenameTemplate": "%DESTINATION_NAME%_%SEGMENT_ID%_%DATETIME(YYYYMMdd_HHmmss)%",
        }
    ],
    "attributes": ["person.name.lastName", "personalEmail.address"],
    "steps": [
        {
            "name": name,
            "status": "pending",
            "attempts": 0,
            "resourceId": None,
            "startedAt": None,
            "finishedAt": None,
            "error": None,
        }
        for name in _STEP_NAMES
    ],
    "flow": None,
    "error": None,
    "createdAt": "2026-11-28T09:30:00Z",
    "updatedAt": "2026-11-28T09:30:00Z",
    "completedAt": None,
}

EVENTS_EXAMPLE: dict[str, Any] = {
    "items": [
        {
            "id": 1,
            "occurredAt": "2026-11-28T09:30:00Z",
            "type": "status",
            "step": None,
            "data": {"status": "pending"},
        },
        {
            "id": 4,
            "occurredAt": "2026-11-28T09:30:01Z",
            "type": "upstream",
            "step": "resolve_destination",
            "data": {
                "method": "GET",
                "path": "/connectionSpecs",
                "status": 200,
                "durationMs": 41.7,
                "attempt": 1,
                "requestId": "8a4f3c1e-2b6d-4e8f-9a0b-1c2d3e4f5a6b",
                "adobeRequestId": "QhFJ3kJm2nQ8",
                "error": None,
            },
        },
    ]
}

VALIDATION_PROBLEM_EXAMPLE: dict[str, Any] = {
    "type": "urn:activation-gateway:problem:validation-error",
    "title": "Invalid request",
    "status": 422,
    "detail": "1 field(s) failed validation",
    "instance": "/activations",
    "errors": [{"path": "/segments", "message": "List should have at least 1 item after validation, not 0"}],
}

_RESPONSE_EXAMPLES: dict[tuple[str, str], dict[str, Any]] = {
    ("createActivation", "202"): ACTIVATION_EXAMPLE,
    ("createActivation", "200"): {**ACTIVATION_EXAMPLE, "status": "succeeded"},
    ("createActivation", "422"): VALIDATION_PROBLEM_EXAMPLE,
    ("getActivation", "200"): {**ACTIVATION_EXAMPLE, "status": "running"},
    ("listActivations", "200"): {"items": [ACTIVATION_EXAMPLE], "nextCursor": None},
    ("listActivationEvents", "200"): EVENTS_EXAMPLE,
    ("rollbackActivation", "202"): {**ACTIVATION_EXAMPLE, "status": "rolling_back"},
}


# Operations whose Idempotency-Key is optional.
_KEY_OPTIONAL = frozenset({"rollbackActivation"})


def enrich(document: dict[str, Any]) -> None:
    components = document.setdefault("components", {})
    schemes = components.setdefault("securitySchemes", {})
    own_scheme = not schemes
    if own_scheme:
        schemes["bearerAuth"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A client API key (see `create-api-key`). Optional in development mode.",
        }
    for path, operations in document["paths"].items():
        for operation in operations.values():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            if path.startswith("/activations"):
                if own_scheme:
                    operation.setdefault("security", [{"bearerAuth": []}])
                responses.setdefault(
                    "500",
                    {
                        "description": "Internal server error",
                        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
                    },
                )
            for parameter in operation.get("parameters", []):
                if parameter.get("in") == "header" and parameter.get("name") == "Idempotency-Key":
                    # Enforced by the handler (a 400 problem rather than FastAPI's 422), but required,
                    # except by the v1 rollback (contract §4), where it is optional.
                    parameter["required"] = operation.get("operationId") not in _KEY_OPTIONAL
                    parameter.setdefault("example", "spring-newsletter-1")
            operation_id = operation.get("operationId")
            if operation_id == "createActivation":
                body = operation.get("requestBody", {}).get("content", {}).get("application/json")
                if body is not None:
                    body["example"] = CREATE_REQUEST_EXAMPLE
            for status, response in responses.items():
                example = _RESPONSE_EXAMPLES.get((operation_id or "", status))
                if example is None:
                    continue
                for media in response.get("content", {}).values():
                    media["example"] = example
