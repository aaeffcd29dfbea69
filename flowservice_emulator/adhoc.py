"""Adobe's ad-hoc activation service ("export now", flow-service.md Part 3 §3.4), version 2 of its API:
``POST /data/core/activation/disflowprovider/adhocrun`` with ``{"activationInfo": {flow id: [audience
ids]}}``, answered with one order per audience naming the run that exports it.

Its guardrails, checked for the whole request before anything starts (one refusal starts nothing):
at most :data:`MAX_AUDIENCES_PER_JOB` audiences; each flow exists and is enabled; each audience is on
the flow and its schedule covers today (the emulated today); at least an hour since the audience was
first activated on the flow (its selector's ``createTime``); no export of that audience still
processing; no scheduled export of the flow still processing. Errors are ``{"message": ...}`` bodies,
with Adobe's texts where Adobe documents one ("Run already going on …", "… are not part of this
dataflow or out of schedule range!") and texts of the same form where it documents none.

The route lives outside the Flow Service base path, as Adobe's does, but behind the same middleware:
latency, faults and late commits apply to it like to any Flow Service call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .auth import Caller
from .config import ADHOC_BASE_PATH, BASE_PATH
from .flowservice import FlowRequest, current_caller, emulator_state
from .runs import covers_today, emulated_today
from .state import EmulatorState

JsonObject = dict[str, Any]

ADHOC_ACCEPT_VERSION: Final = "version=2"
MAX_AUDIENCES_PER_JOB: Final = 80
FIRST_ACTIVATION_WAIT_MS: Final = 3_600_000


class AdhocRefusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def build_router() -> APIRouter:
    router = APIRouter(prefix=ADHOC_BASE_PATH)

    @router.post("/adhocrun")
    async def adhoc_run(request: Request) -> JSONResponse:
        state = emulator_state(request)
        flow_request = FlowRequest(
            headers=request.headers,
            query_string=request.scope.get("query_string", b""),
            path_params={},
            body=await request.body(),
        )
        caller = current_caller(state, flow_request)  # Adobe I/O's header checks, as for Flow Service
        try:
            orders = start_jobs(state, caller, flow_request)
        except AdhocRefusal as refusal:
            return JSONResponse({"message": refusal.message}, status_code=refusal.status)
        return JSONResponse({"order": orders})

    return router


def start_jobs(state: EmulatorState, caller: Caller, request: FlowRequest) -> list[JsonObject]:
    """Check every guardrail for the whole request, then start one run per flow."""
    if ADHOC_ACCEPT_VERSION not in request.headers.get("accept", "").replace(" ", ""):
        # Version 1 of the API (the default) takes export ids, which this emulator does not model.
        raise AdhocRefusal(
            400, "exportIds is required: send Accept: application/vnd.adobe.adhoc.activation+json; version=2"
        )
    activation_info = _activation_info(request.body)
    total = sum(len(audiences) for audiences in activation_info.values())
    if total > MAX_AUDIENCES_PER_JOB:
        raise AdhocRefusal(
            400, f"At most {MAX_AUDIENCES_PER_JOB} segments can be activated in one ad hoc job ({total} sent)"
        )
    flows = {
        flow_id: _checked_flow(state, caller, flow_id, audiences) for flow_id, audiences in activation_info.items()
    }
    orders: list[JsonObject] = []
    for flow_id, audiences in activation_info.items():
        run = state.runs.start_adhoc(flows[flow_id], caller.sandbox, audiences)
        status_url = f"{BASE_PATH}/runs/{run.id}"
        orders += [{"segment": audience, "order": flow_id, "statusURL": status_url} for audience in audiences]
    return orders


def _activation_info(body: bytes) -> dict[str, list[str]]:
    try:
        parsed = json.loads(body) if body.strip() else None
    except ValueError:
        raise AdhocRefusal(400, "The request body is not valid JSON") from None
    info = parsed.get("activationInfo") if isinstance(parsed, Mapping) else None
    if not isinstance(info, Mapping) or not info:
        raise AdhocRefusal(400, "activationInfo is required: an object of dataflow ids and their segment ids")
    checked: dict[str, list[str]] = {}
    for flow_id, audiences in info.items():
        if not isinstance(audiences, list) or not audiences or not all(isinstance(a, str) and a for a in audiences):
            raise AdhocRefusal(400, f"activationInfo.{flow_id} must be a non-empty list of segment ids")
        checked[str(flow_id)] = list(dict.fromkeys(audiences))
    return checked


def _checked_flow(state: EmulatorState, caller: Caller, flow_id: str, audiences: list[str]) -> JsonObject:
    flow = state.store.get("flows", caller.sandbox, flow_id)
    if flow is None:
        raise AdhocRefusal(404, f"Dataflow {flow_id} not found")
    if flow.get("state") != "enabled":
        raise AdhocRefusal(400, f"Dataflow {flow_id} is not enabled")
    runs = state.runs
    runs.catch_up_flow(flow, caller.sandbox)  # its scheduled runs up to now exist
    now = state.clock.now_ms()
    today = emulated_today(state.clock)
    selectors = _segment_values(flow)
    out_of_range = [
        a for a in audiences if a not in selectors or not covers_today(selectors[a].get("schedule") or {}, today)
    ]
    if out_of_range:
        names = ", ".join(str(selectors.get(a, {}).get("name") or a) for a in out_of_range)
        raise AdhocRefusal(400, f"Segments {names} are not part of this dataflow or out of schedule range!")
    too_new = [a for a in audiences if now - _first_activated_ms(state, selectors[a]) < FIRST_ACTIVATION_WAIT_MS]
    if too_new:
        raise AdhocRefusal(
            400, f"Segments {', '.join(too_new)} were activated less than an hour ago for order {flow_id}!"
        )
    for audience in audiences:
        running = runs.running(flow_id, audience)
        if running is not None:
            raise AdhocRefusal(
                400, f"Run already going on for audience {audience} for order {flow_id} with run id {running.id}"
            )
    scheduled = runs.scheduled_run_going_on(flow_id)
    if scheduled is not None:
        raise AdhocRefusal(400, f"Scheduled run going on for order {flow_id} with run id {scheduled.id}")
    return flow


def _segment_values(flow: JsonObject) -> dict[str, JsonObject]:
    values: dict[str, JsonObject] = {}
    for transformation in flow.get("transformations") or []:
        for selector in ((transformation or {}).get("params") or {}).get("segmentSelectors", {}).get("selectors", []):
            value = selector.get("value") if isinstance(selector, dict) else None
            if isinstance(value, dict) and isinstance(value.get("id"), str):
                values[value["id"]] = value
    return values


def _first_activated_ms(state: EmulatorState, value: JsonObject) -> int:
    """When the audience was put on the flow, on the emulated clock (``createTime``: real epoch seconds)."""
    try:
        created = float(value.get("createTime") or 0) * 1000
    except (TypeError, ValueError):
        created = 0.0
    return state.clock.at_ms(created)
