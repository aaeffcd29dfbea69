"""HTTP routes of the Flow Service under ``/data/foundation/flowservice``.

Handlers only translate HTTP to :class:`~flowservice_emulator.resources.ResourceService` calls. They are
synchronous functions of a :class:`FlowRequest` whose body has already been read, so no other request can
run between a check and the mutation it guards.

One route table, :data:`ROUTES`, serves two dispatchers that must answer alike: the FastAPI router built by
:func:`build_router` (which also gives unknown paths and methods their 404 and 405), and the direct
dispatch of :mod:`~flowservice_emulator.dispatch`, which the middleware tries first because the framework's
routing, dependency solving and ASGI plumbing cost several times what a handler does.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, QueryParams

from .auth import AUTH_HEADERS, Caller, authenticate
from .config import BASE_PATH
from .errors import FlowCode, content_type_error, flow_error
from .state import EmulatorState
from .store import KINDS

JsonObject = dict[str, Any]


def emulator_state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


@dataclass(slots=True)
class FlowRequest:
    """What a handler may read from a request: the same Starlette types a FastAPI endpoint would see."""

    headers: Headers
    query_string: bytes
    path_params: dict[str, str]
    body: bytes

    @property
    def query_params(self) -> QueryParams:
        return QueryParams(self.query_string)

    def query(self) -> list[tuple[str, str]]:
        return list(self.query_params.multi_items())


Handler = Callable[[EmulatorState, FlowRequest], Response]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # relative to BASE_PATH, with Starlette path parameters
    handler: Handler


def current_caller(state: EmulatorState, request: FlowRequest) -> Caller:
    """Adobe I/O's header checks; every Flow Service route makes them before anything else."""
    # {name.lower(): value} over every header, last one winning, restricted to the names authenticate()
    # reads: decoding the others is wasted work on every request.
    headers: dict[str, str] = {}
    for raw_name, raw_value in request.headers.raw:
        name = raw_name.decode("latin-1").lower()
        if name in AUTH_HEADERS:
            headers[name] = raw_value.decode("latin-1")
    return authenticate(headers, state.tokens, state.config)


def json_body(request: FlowRequest) -> Any:
    """The parsed body of a POST or PATCH, with Adobe's content-type and empty-body rules."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise content_type_error()
    raw = request.body
    if not raw.strip():
        raise flow_error(FlowCode.BODY_EMPTY, "The request body is null or empty.")
    try:
        return json.loads(raw)
    except ValueError:
        raise flow_error(FlowCode.INVALID_FIELD, "The request body is not valid JSON.") from None


def _list_specs(which: str) -> Handler:
    def handler(state: EmulatorState, request: FlowRequest) -> Response:
        current_caller(state, request)
        return JSONResponse(state.service.list_specs(which, request.query()))

    return handler


def _get_spec(which: str) -> Handler:
    def handler(state: EmulatorState, request: FlowRequest) -> Response:
        current_caller(state, request)
        return JSONResponse(state.service.get_spec(which, request.path_params["spec_id"]))

    return handler


def _list_runs(state: EmulatorState, request: FlowRequest) -> Response:
    caller = current_caller(state, request)
    return JSONResponse(state.runs.list_body(caller.sandbox, request.query()))


def _get_run(state: EmulatorState, request: FlowRequest) -> Response:
    caller = current_caller(state, request)
    return JSONResponse(state.runs.get_body(caller.sandbox, request.path_params["run_id"]))


def _flow_action(state: EmulatorState, request: FlowRequest) -> Response:
    caller = current_caller(state, request)
    op = request.query_params.get("op")
    flow = state.service.flow_action(caller, request.path_params["flow_id"], op)
    return JSONResponse({"id": flow["id"], "etag": flow["etag"]})


def _list(kind: str) -> Handler:
    def handler(state: EmulatorState, request: FlowRequest) -> Response:
        caller = current_caller(state, request)
        return JSONResponse(state.service.list_resources(kind, caller, request.query()))

    return handler


def _create(kind: str) -> Handler:
    def handler(state: EmulatorState, request: FlowRequest) -> Response:
        caller = current_caller(state, request)
        body = json_body(request)
        if not isinstance(body, dict):
            raise flow_error(FlowCode.INVALID_FIELD, "The request body must be a JSON object.")
        doc = state.service.create(kind, caller, body)
        return JSONResponse(
            {"id": doc["id"], "etag": doc["etag"]},
            status_code=201,
            headers={"Location": f"{BASE_PATH}/{kind}/{doc['id']}"},
        )

    return handler


def _get(kind: str) -> Handler:
    def handler(state: EmulatorState, request: FlowRequest) -> Response:
        caller = current_caller(state, request)
        return JSONResponse(state.service.get(kind, caller, request.path_params["resource_id"]))

    return handler


def _patch(kind: str) -> Handler:
    def handler(state: EmulatorState, request: FlowRequest) -> Response:
        caller = current_caller(state, request)
        body = json_body(request)
        if_match = request.headers.get("if-match")
        doc = state.service.patch(kind, caller, request.path_params["resource_id"], if_match, body)
        return JSONResponse({"id": doc["id"], "etag": doc["etag"]})

    return handler


def _delete(kind: str) -> Handler:
    def handler(state: EmulatorState, request: FlowRequest) -> Response:
        caller = current_caller(state, request)
        state.service.delete(kind, caller, request.path_params["resource_id"])
        return Response(status_code=202)  # "marked for deletion" (Dest spec); the Sources spec says 204

    return handler


def _build_routes() -> tuple[Route, ...]:
    routes: list[Route] = []
    for which in ("connectionSpecs", "flowSpecs"):
        routes.append(Route("GET", f"/{which}", _list_specs(which)))
        routes.append(Route("GET", f"/{which}/{{spec_id}}", _get_spec(which)))
    routes.append(Route("GET", "/runs", _list_runs))
    routes.append(Route("GET", "/runs/{run_id}", _get_run))
    routes.append(Route("POST", "/flows/{flow_id}/action", _flow_action))
    for kind in KINDS:
        routes.append(Route("GET", f"/{kind}", _list(kind)))
        routes.append(Route("POST", f"/{kind}", _create(kind)))
        routes.append(Route("GET", f"/{kind}/{{resource_id}}", _get(kind)))
        # Adobe's Sources spec writes base-connection PATCH and DELETE with a trailing slash; accept both.
        for suffix in ("", "/"):
            routes.append(Route("PATCH", f"/{kind}/{{resource_id}}{suffix}", _patch(kind)))
            routes.append(Route("DELETE", f"/{kind}/{{resource_id}}{suffix}", _delete(kind)))
    return tuple(routes)


ROUTES: tuple[Route, ...] = _build_routes()


def build_router() -> APIRouter:
    """The routes as FastAPI endpoints: what serves a request the direct dispatch leaves to the framework."""
    router = APIRouter(prefix=BASE_PATH)
    for route in ROUTES:
        router.add_api_route(route.path, _endpoint(route.handler), methods=[route.method])
    return router


def _endpoint(handler: Handler) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        flow_request = FlowRequest(
            headers=request.headers,
            query_string=request.scope.get("query_string", b""),
            path_params=request.path_params,
            body=await request.body(),
        )
        return handler(emulator_state(request), flow_request)

    return endpoint
