"""Direct dispatch of Flow Service requests, bypassing FastAPI's routing for the routes of
:data:`~flowservice_emulator.flowservice.ROUTES`.

FastAPI's router, dependency solver and the ASGI hops between middleware layers cost several times more CPU
than the handlers themselves. The middleware therefore asks :class:`DirectRoutes` first. It only answers a
request that one of the routes matches exactly (method and path, with Starlette's own path regexes) and
calls the same handler the FastAPI endpoint would; everything else (HEAD, unknown paths and methods, the IMS
and admin routes) is left to the framework, so 404s, 405s and every other framework behaviour are unchanged.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import Response
from fastapi.responses import JSONResponse
from starlette.convertors import Convertor
from starlette.datastructures import Headers
from starlette.routing import compile_path

from .config import BASE_PATH
from .errors import ApiError
from .flowservice import ROUTES, FlowRequest, Route
from .state import EmulatorState

Scope = MutableMapping[str, Any]

_PREFIX = BASE_PATH + "/"


@dataclass
class CapturedResponse:
    """A complete response, held until the middleware has decided what the caller gets to see."""

    status: int = 500
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def of(cls, response: Response) -> CapturedResponse:
        return cls(response.status_code, list(response.raw_headers), bytes(response.body))


def error_response(error: ApiError, request_id: str) -> JSONResponse:
    """How an :class:`ApiError` is answered, by the app's exception handler and by the direct dispatch."""
    return JSONResponse(error.render(request_id), status_code=error.status, headers=error.headers or None)


class DirectRoutes:
    def __init__(self, state: EmulatorState, routes: tuple[Route, ...] = ROUTES) -> None:
        self.state = state
        # Candidates by method and first path segment (always a literal), in declaration order: the first
        # full match wins, as in Starlette's router. Matching itself uses Starlette's regexes.
        self._candidates: dict[tuple[str, str], list[tuple[re.Pattern[str], dict[str, Convertor[Any]], Route]]] = {}
        for route in routes:
            segment = _first_segment(route.path)
            if "{" in segment:
                raise ValueError(f"route {route.path} must start with a literal segment")
            regex, _, convertors = compile_path(BASE_PATH + route.path)
            self._candidates.setdefault((route.method, segment), []).append((regex, convertors, route))

    def dispatch(self, scope: Scope, body: bytes, request_id: str) -> CapturedResponse | None:
        """The response of the matching route, or ``None`` when the framework must route the request.

        Exceptions other than :class:`ApiError` propagate, as they do out of FastAPI's router."""
        path: str = scope["path"]
        if not path.startswith(_PREFIX) or scope.get("root_path"):
            return None
        candidates = self._candidates.get((scope["method"], _first_segment(path[len(BASE_PATH) :])), ())
        for regex, convertors, route in candidates:
            match = regex.match(path)
            if match is not None:
                params = {name: convertors[name].convert(value) for name, value in match.groupdict().items()}
                request = FlowRequest(
                    headers=Headers(raw=scope["headers"]),
                    query_string=scope.get("query_string", b""),
                    path_params=params,
                    body=body,
                )
                try:
                    response = route.handler(self.state, request)
                except ApiError as error:
                    response = error_response(error, request_id)
                return CapturedResponse.of(response)
        return None


def _first_segment(path: str) -> str:
    """``connections`` for ``/connections/{resource_id}``."""
    return path[1:].partition("/")[0]
