"""The admin API at ``/_emulator``: faults, latency, late commits, token expiry, state, history, out-of-band
flow edits and reset. No auth, but no secret either: resources and the request history are masked."""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config import ADMIN_PATH, DEFAULT_SANDBOX
from .faults import FaultRule, LatencyRule
from .flowservice import emulator_state
from .ui_edits import UI_PERSON, EditRefused, FlowEdit, SegmentChange

JsonObject = dict[str, Any]
# Any JSON value but null, which stands for "no body given".
JsonValue = JsonObject | list[Any] | str | int | float | bool

# What a server refuses to put in a header value (uvicorn raises on them): controls other than tab.
_HEADER_FORBIDDEN: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_NO_BODY_STATUSES: Final = frozenset({204, 205})


class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped. The history and the fault rules hold whatever callers
    and tests sent, lone surrogates included, which the UTF-8 encoding of a plain JSONResponse refuses; and
    NaN, which ``json.loads`` accepts in a request body, is written back as it came."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=True, separators=(",", ":")).encode("ascii")


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
    mode: Literal["error", "commit_then_fail", "late_commit"] = "error"
    status: int = Field(default=500, ge=200, le=599)
    retryAfter: Annotated[int, Field(ge=0)] | Annotated[str, Field(min_length=1, max_length=256)] | None = None
    failure: Literal["error", "timeout", "drop"] = "error"
    holdMs: int = Field(default=30000, ge=0)
    commitAfterMs: int = Field(default=5000, ge=0)
    times: int | None = Field(default=None, ge=1)
    rate: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int | None = None
    body: JsonValue | None = None

    @model_validator(mode="after")
    def _consistent(self) -> FaultIn:
        if self.mode == "error" and self.failure != "error":
            raise ValueError("'failure' other than 'error' requires mode 'commit_then_fail' or 'late_commit'")
        if "commitAfterMs" in self.model_fields_set and self.mode != "late_commit":
            raise ValueError("'commitAfterMs' requires mode 'late_commit'")
        if isinstance(self.retryAfter, str) and _HEADER_FORBIDDEN.search(self.retryAfter):
            raise ValueError("'retryAfter' must not contain control characters: no server sends them")
        self._check_status()
        return self

    def _check_status(self) -> None:
        """400-599 always. A 2xx only from mode 'error' with a body: a malformed success is the point, and
        the emulator has no success body of its own to send for an arbitrary status."""
        if self.status >= 400:
            return
        if not (self.status < 300 and self.mode == "error" and self.body is not None):
            raise ValueError("a status below 400 needs mode 'error', a 2xx status and a 'body'")
        if self.status in _NO_BODY_STATUSES:
            raise ValueError(f"a {self.status} answer carries no body")


class ClockIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    speed: float | None = Field(default=None, ge=0.0, le=1_000_000.0)
    advanceSeconds: float = Field(default=0.0, ge=0.0)


class NextRunsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sandbox: str = DEFAULT_SANDBOX
    outcome: Literal["success", "failed", "processing"]
    times: int = Field(default=1, ge=1, le=1000)
    skippedRecords: int | None = Field(default=None, ge=0)


class RunNowIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sandbox: str = DEFAULT_SANDBOX
    audiences: list[str] | None = None


class ContainingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1)


NonEmpty = Annotated[str, Field(min_length=1)]


class AudienceIn(BaseModel):
    """A segment selector's ``value``: an ``id`` and any other field of it, which override the defaults."""

    model_config = ConfigDict(extra="allow")

    id: NonEmpty


class AudienceChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: NonEmpty
    set: JsonObject = Field(min_length=1)


class FlowEditIn(BaseModel):
    """A person's edit of a flow in Adobe's UI (see :mod:`.ui_edits`); everything given is saved at once."""

    model_config = ConfigDict(extra="forbid")

    sandbox: NonEmpty = DEFAULT_SANDBOX
    person: NonEmpty = UI_PERSON
    name: NonEmpty | None = None
    addSegments: list[AudienceIn] = []
    removeSegments: list[NonEmpty] = []
    changeSegments: list[AudienceChangeIn] = []
    addAttributes: list[NonEmpty] = []
    removeAttributes: list[NonEmpty] = []
    patch: list[JsonObject] = []
    state: Literal["enabled", "disabled"] | None = None

    @model_validator(mode="after")
    def _changes_something(self) -> FlowEditIn:
        lists = (self.addSegments, self.removeSegments, self.changeSegments, self.addAttributes, self.removeAttributes)
        if self.name is None and self.state is None and not self.patch and not any(lists):
            raise ValueError("an edit changes something: give name, a segment or attribute change, patch or state")
        return self

    def to_edit(self) -> FlowEdit:
        return FlowEdit(
            person=self.person,
            name=self.name,
            add_segments=[audience.model_dump() for audience in self.addSegments],
            remove_segments=self.removeSegments,
            change_segments=[SegmentChange(change.id, change.set) for change in self.changeSegments],
            add_attributes=self.addAttributes,
            remove_attributes=self.removeAttributes,
            patch=self.patch,
            state=self.state,
        )


def build_router() -> APIRouter:
    router = APIRouter(prefix=ADMIN_PATH, default_response_class=AsciiJSONResponse)

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
            commit_after_ms=rule.commitAfterMs,
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

    # Removing rules leaves their pending late commits alone: "Adobe" already has those requests.
    @router.delete("/faults", status_code=204)
    async def clear_faults(request: Request) -> Response:
        emulator_state(request).plan.faults.clear()
        return Response(status_code=204)

    @router.delete("/faults/{rule_id}", status_code=204)
    async def delete_fault(rule_id: str, request: Request) -> Response:
        if not emulator_state(request).plan.remove_fault(rule_id):
            raise HTTPException(404, f"no fault rule {rule_id}")
        return Response(status_code=204)

    @router.get("/lateCommits")
    async def list_late_commits(request: Request) -> JsonObject:
        return emulator_state(request).late_commits.describe()

    @router.delete("/lateCommits")
    async def cancel_late_commits(request: Request) -> JsonObject:
        return {"cancelled": emulator_state(request).late_commits.cancel_all()}

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

    @router.post("/requests/containing")
    async def requests_containing(query: ContainingIn, request: Request) -> JsonObject:
        """Which requests carried ``value`` (a secret the caller already knows), though the entries mask it."""
        return {"seqs": emulator_state(request).history.containing(query.value)}

    @router.post("/flows/{flow_id}/edit")
    async def edit_flow(flow_id: str, edit: FlowEditIn, request: Request) -> JsonObject:
        """Edit a flow out of band, as a person in Adobe's UI would: the flow as it then is, masked. What
        Flow Service refuses answers its error; an edit the UI would not offer (an audience the flow does
        not hold) answers 409."""
        try:
            return emulator_state(request).service.edit_flow_as_person(edit.sandbox, flow_id, edit.to_edit())
        except EditRefused as exc:
            raise HTTPException(409, str(exc)) from None

    @router.get("/clock")
    async def get_clock(request: Request) -> JsonObject:
        return emulator_state(request).clock.view()

    @router.post("/clock")
    async def set_clock(change: ClockIn, request: Request) -> JsonObject:
        """Speed the emulator's clock up (or down), and/or step it forward (see :mod:`.clock`)."""
        clock = emulator_state(request).clock
        clock.change(speed=change.speed, advance_seconds=change.advanceSeconds)
        return clock.view()

    @router.post("/flows/{flow_id}/runs/next", status_code=204)
    async def script_next_runs(flow_id: str, script: NextRunsIn, request: Request) -> Response:
        """The flow's next ``times`` runs (scheduled or ad hoc) end as ``outcome`` (``processing``: never)."""
        state = emulator_state(request)
        if state.store.get("flows", script.sandbox, flow_id) is None:
            raise HTTPException(404, f"no flow {flow_id} in sandbox {script.sandbox}")
        state.runs.script(flow_id, script.outcome, times=script.times, skipped_records=script.skippedRecords)
        return Response(status_code=204)

    @router.post("/flows/{flow_id}/runs", status_code=201)
    async def run_now(flow_id: str, body: RunNowIn, request: Request) -> JsonObject:
        """A scheduled run of the flow now (of these audiences, default all), without waiting for its schedule."""
        state = emulator_state(request)
        flow = state.store.get("flows", body.sandbox, flow_id)
        if flow is None:
            raise HTTPException(404, f"no flow {flow_id} in sandbox {body.sandbox}")
        run = state.runs.run_now(flow, body.sandbox, body.audiences)
        return state.runs.render(run, lower_case=True)

    @router.post("/reset", status_code=204)
    async def reset(request: Request) -> Response:
        emulator_state(request).reset()
        return Response(status_code=204)

    return router
