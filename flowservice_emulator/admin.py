"""The admin API at ``/_emulator``: faults, latency, token expiry, state, history and reset. No auth."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import ADMIN_PATH
from .faults import FaultRule, LatencyRule
from .flowservice import emulator_state

JsonObject = dict[str, Any]


class LatencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = "*"
    path: str = "*"
    fixedMs: int = Field(default=0, ge=0)
    randomMs: int = Field(default=0, ge=0)


class FaultIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = "*"
    path: str = "*"
    bodyContains: str | None = None
    mode: Literal["error", "commit_then_fail"] = "error"
    status: int = Field(default=500, ge=400, le=599)
    retryAfter: int | None = Field(default=None, ge=0)
    failure: Literal["error", "timeout", "drop"] = "error"
    holdMs: int = Field(default=30000, ge=0)
    times: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    body: JsonObject | None = None

    @model_validator(mode="after")
    def _failure_needs_commit(self) -> FaultIn:
        if self.mode == "error" and self.failure != "error":
            raise ValueError("'failure' other than 'error' requires mode 'commit_then_fail'")
        return self


def build_router() -> APIRouter:
    router = APIRouter(prefix=ADMIN_PATH)

    @router.post("/latency", status_code=201)
    async def add_latency(rule: LatencyIn, request: Request) -> JsonObject:
        plan = emulator_state(request).plan
        latency = LatencyRule(plan.next_id("latency"), rule.method, rule.path, rule.fixedMs, rule.randomMs)
        plan.latency.append(latency)
        return {"id": latency.id}

    @router.get("/latency")
    async def list_latency(request: Request) -> JsonObject:
        return {"items": [rule.describe() for rule in emulator_state(request).plan.latency]}

    @router.delete("/latency", status_code=204)
    async def clear_latency(request: Request) -> Response:
        emulator_state(request).plan.latency.clear()
        return Response(status_code=204)

    @router.delete("/latency/{rule_id}", status_code=204)
    async def delete_latency(rule_id: str, request: Request) -> Response:
        if not emulator_state(request).plan.remove_latency(rule_id):
            raise HTTPException(404, f"no latency rule {rule_id}")
        return Response(status_code=204)

    @router.post("/faults", status_code=201)
    async def add_fault(rule: FaultIn, request: Request) -> JsonObject:
        plan = emulator_state(request).plan
        fault = FaultRule(
            id=plan.next_id("fault"),
            method=rule.method,
            path=rule.path,
            mode=rule.mode,
            status=rule.status,
            failure=rule.failure,
            body_contains=rule.bodyContains,
            retry_after=rule.retryAfter,
            hold_ms=rule.holdMs,
            times=rule.times,
            rate=rule.rate,
            seed=rule.seed,
            body=rule.body,
        )
        plan.faults.append(fault)
        return {"id": fault.id}

    @router.get("/faults")
    async def list_faults(request: Request) -> JsonObject:
        return {"items": [rule.describe() for rule in emulator_state(request).plan.faults]}

    @router.delete("/faults", status_code=204)
    async def clear_faults(request: Request) -> Response:
        emulator_state(request).plan.faults.clear()
        return Response(status_code=204)

    @router.delete("/faults/{rule_id}", status_code=204)
    async def delete_fault(rule_id: str, request: Request) -> Response:
        if not emulator_state(request).plan.remove_fault(rule_id):
            raise HTTPException(404, f"no fault rule {rule_id}")
        return Response(status_code=204)

    @router.post("/tokens/expire")
    async def expire_tokens(request: Request) -> JsonObject:
        return {"expired": emulator_state(request).tokens.expire_all()}

    @router.get("/state")
    async def get_state(request: Request) -> JsonObject:
        state = emulator_state(request)
        resources, counts = state.service.masked_state()
        return {"resources": resources, "counts": counts, "requests": state.history.entries()}

    @router.get("/requests")
    async def get_requests(request: Request, since: int = 0) -> JsonObject:
        return {"items": emulator_state(request).history.entries(since)}

    @router.post("/reset", status_code=204)
    async def reset(request: Request) -> Response:
        emulator_state(request).reset()
        return Response(status_code=204)

    return router
