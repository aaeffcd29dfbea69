"""Liveness, readiness (contract §5) and metrics. None of these need an API key."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field

router = APIRouter(tags=["operations"])

HEALTH_JSON = "application/health+json"


class HealthJSONResponse(JSONResponse):
    media_type = HEALTH_JSON


class HealthCheck(BaseModel):
    """One entry of a check, after draft-inadarei-api-health-check."""

    model_config = ConfigDict(extra="allow")

    status: Literal["pass", "warn", "fail"]
    observedValue: Any | None = None
    observedUnit: str | None = None
    output: str | None = None


class Health(BaseModel):
    """`status` is `fail` when any check failed; `checks` names each one (e.g. `database:connection`,
    `database:migrations`, `worker:heartbeat`, `process:draining`)."""

    status: Literal["pass", "warn", "fail"]
    checks: dict[str, list[HealthCheck]] | None = None
    notes: list[str] | None = Field(default=None, description="How this process was started (development runs).")


_READY_EXAMPLE = {
    "status": "fail",
    "checks": {
        "database:connection": [{"status": "fail", "output": "OperationalError"}],
        "worker:heartbeat": [{"status": "pass", "observedValue": 3, "observedUnit": "active leases"}],
        "flowservice:endpoint": [{"status": "pass", "observedValue": "https://platform.adobe.io/…", "output": "Adobe"}],
    },
}


@router.get(
    "/health/live",
    operation_id="getLiveness",
    summary="The process can serve requests",
    description="Checks no dependency: restart the process only when this fails.",
    response_model=Health,
    response_class=HealthJSONResponse,
    responses={200: {"content": {HEALTH_JSON: {"example": {"status": "pass"}}}}},
)
async def live() -> Response:
    return HealthJSONResponse({"status": "pass"})


@router.get(
    "/health/ready",
    operation_id="getReadiness",
    summary="Database reachable, migrations at head, saga worker alive",
    description=(
        "`503` when any check fails, including `process:draining` from the moment the process "
        "received SIGTERM (it keeps serving for `SHUTDOWN_DELAY_SECONDS` before it stops)."
    ),
    response_model=Health,
    response_class=HealthJSONResponse,
    responses={
        503: {
            "model": Health,
            "description": "A check failed; `checks` names it.",
            "content": {HEALTH_JSON: {"example": _READY_EXAMPLE}},
        }
    },
)
async def ready(request: Request) -> Response:
    runtime = request.app.state.runtime
    checks: dict[str, list[dict[str, Any]]] = await runtime.readiness_checks()
    failed = any(c["status"] == "fail" for entries in checks.values() for c in entries)
    warned = any(c["status"] == "warn" for entries in checks.values() for c in entries)
    status = "fail" if failed else "warn" if warned else "pass"
    body: dict[str, Any] = {"status": status, "checks": checks}
    if runtime.notes:
        body["notes"] = runtime.notes
    return HealthJSONResponse(body, status_code=503 if failed else 200)


@router.get(
    "/metrics",
    operation_id="getMetrics",
    summary="Prometheus metrics",
    description="Prometheus text exposition format 0.0.4. The list of metrics is in docs/operations.md.",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    runtime = request.app.state.runtime
    await runtime.refresh_metrics()
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
