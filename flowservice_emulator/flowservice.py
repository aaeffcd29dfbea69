"""HTTP routes of the Flow Service under ``/data/foundation/flowservice``.

Handlers only translate HTTP to :class:`~flowservice_emulator.resources.ResourceService` calls. Each one
awaits the request body first and then calls the service synchronously, so no other request can run
between a check and the mutation it guards.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse

from .auth import Caller, authenticate
from .config import BASE_PATH
from .errors import FlowCode, content_type_error, flow_error
from .state import EmulatorState
from .store import KINDS

JsonObject = dict[str, Any]


def emulator_state(request: Request) -> EmulatorState:
    state: EmulatorState = request.app.state.emulator
    return state


async def current_caller(request: Request) -> Caller:
    # async on purpose: FastAPI runs sync dependencies in a thread pool, away from the event loop.
    state = emulator_state(request)
    headers = {name.lower(): value for name, value in request.headers.items()}
    return authenticate(headers, state.tokens, state.config)


async def json_body(request: Request) -> Any:
    """The parsed body of a POST or PATCH, with Adobe's content-type and empty-body rules."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise content_type_error()
    raw = await request.body()
    if not raw.strip():
        raise flow_error(FlowCode.BODY_EMPTY, "The request body is null or empty.")
    try:
        return json.loads(raw)
    except ValueError:
        raise flow_error(FlowCode.INVALID_FIELD, "The request body is not valid JSON.") from None


def _query(request: Request) -> list[tuple[str, str]]:
    return list(request.query_params.multi_items())


def build_router() -> APIRouter:
    router = APIRouter(prefix=BASE_PATH, dependencies=[Depends(current_caller)])

    for which in ("connectionSpecs", "flowSpecs"):
        router.add_api_route(f"/{which}", _list_specs(which), methods=["GET"])
        router.add_api_route(f"/{which}/{{spec_id}}", _get_spec(which), methods=["GET"])

    @router.get("/runs")
    async def list_runs(request: Request) -> JSONResponse:
        return JSONResponse(emulator_state(request).service.list_runs(_query(request)))

    @router.post("/flows/{flow_id}/action")
    async def flow_action(flow_id: str, request: Request, caller: Caller = Depends(current_caller)) -> JSONResponse:
        flow = emulator_state(request).service.flow_action(caller, flow_id, request.query_params.get("op"))
        return JSONResponse({"id": flow["id"], "etag": flow["etag"]})

    for kind in KINDS:
        router.add_api_route(f"/{kind}", _list(kind), methods=["GET"])
        router.add_api_route(f"/{kind}", _create(kind), methods=["POST"], status_code=201)
        router.add_api_route(f"/{kind}/{{resource_id}}", _get(kind), methods=["GET"])
        # Adobe's Sources spec writes base-connection PATCH and DELETE with a trailing slash; accept both.
        for suffix in ("", "/"):
            router.add_api_route(f"/{kind}/{{resource_id}}{suffix}", _patch(kind), methods=["PATCH"])
            router.add_api_route(f"/{kind}/{{resource_id}}{suffix}", _delete(kind), methods=["DELETE"], status_code=202)
    return router


Handler = Callable[..., Awaitable[Response]]


def _list_specs(which: str) -> Handler:
    async def handler(request: Request) -> JSONResponse:
        return JSONResponse(emulator_state(request).service.list_specs(which, _query(request)))

    return handler


def _get_spec(which: str) -> Handler:
    async def handler(spec_id: str, request: Request) -> JSONResponse:
        return JSONResponse(emulator_state(request).service.get_spec(which, spec_id))

    return handler


def _list(kind: str) -> Handler:
    async def handler(request: Request, caller: Caller = Depends(current_caller)) -> JSONResponse:
        return JSONResponse(emulator_state(request).service.list_resources(kind, caller, _query(request)))

    return handler


def _create(kind: str) -> Handler:
    async def handler(request: Request, caller: Caller = Depends(current_caller)) -> JSONResponse:
        body = await json_body(request)
        if not isinstance(body, dict):
            raise flow_error(FlowCode.INVALID_FIELD, "The request body must be a JSON object.")
        doc = emulator_state(request).service.create(kind, caller, body)
        return JSONResponse(
            {"id": doc["id"], "etag": doc["etag"]},
            status_code=201,
            headers={"Location": f"{BASE_PATH}/{kind}/{doc['id']}"},
        )

    return handler


def _get(kind: str) -> Handler:
    async def handler(resource_id: str, request: Request, caller: Caller = Depends(current_caller)) -> JSONResponse:
        return JSONResponse(emulator_state(request).service.get(kind, caller, resource_id))

    return handler


def _patch(kind: str) -> Handler:
    async def handler(resource_id: str, request: Request, caller: Caller = Depends(current_caller)) -> JSONResponse:
        body = await json_body(request)
        doc = emulator_state(request).service.patch(kind, caller, resource_id, request.headers.get("if-match"), body)
        return JSONResponse({"id": doc["id"], "etag": doc["etag"]})

    return handler


def _delete(kind: str) -> Handler:
    async def handler(resource_id: str, request: Request, caller: Caller = Depends(current_caller)) -> Response:
        emulator_state(request).service.delete(kind, caller, resource_id)
        return Response(status_code=202)  # "marked for deletion" (Dest spec); the Sources spec says 204

    return handler
