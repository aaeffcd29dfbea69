"""Liveness, readiness (contract §5) and metrics. None of these need an API key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

router = APIRouter(tags=["operations"])

HEALTH_JSON = "application/health+json"


@router.get("/health/live", operation_id="getLiveness", summary="The process can serve requests")
async def live() -> Response:
    return JSONResponse({"status": "pass"}, media_type=HEALTH_JSON)


@router.get(
    "/health/ready",
    operation_id="getReadiness",
    summary="Database reachable, migrations at head, saga worker alive",
    responses={503: {"description": "A check failed; `checks` names it.", "content": {HEALTH_JSON: {}}}},
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
    return JSONResponse(body, status_code=503 if failed else 200, media_type=HEALTH_JSON)


@router.get("/metrics", operation_id="getMetrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
