"""The application factory."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import adhoc, admin, flowservice, ims
from .config import BASE_PATH, EmulatorConfig
from .dispatch import DirectRoutes, error_response
from .errors import ApiError, FlowCode, flow_error
from .middleware import EmulatorMiddleware
from .state import EmulatorState


def create_app(config: EmulatorConfig | None = None, *, direct_dispatch: bool = True) -> FastAPI:
    """``direct_dispatch=False`` routes every request through FastAPI (see :mod:`.dispatch`); the answers are
    the same, only slower. Tests use it to check exactly that."""
    state = EmulatorState(config or EmulatorConfig())
    app = FastAPI(
        title="Adobe Flow Service emulator",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,  # Adobe does not redirect; and /connections/{id}/ is a real route here
    )
    app.state.emulator = state
    app.include_router(ims.build_router())
    app.include_router(flowservice.build_router())
    app.include_router(adhoc.build_router())
    app.include_router(admin.build_router())
    app.add_exception_handler(ApiError, _render_api_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _render_http_error)  # type: ignore[arg-type]
    routes = DirectRoutes(state) if direct_dispatch else None
    app.add_middleware(EmulatorMiddleware, state=state, routes=routes)
    return app


def _request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


async def _render_api_error(request: Request, exc: ApiError) -> JSONResponse:
    return error_response(exc, _request_id(request))


async def _render_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Unknown routes and methods under the Flow Service base path answer in Adobe's error format."""
    if not request.url.path.startswith(BASE_PATH):
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code)
    if exc.status_code == 404:
        error = flow_error(
            FlowCode.NOT_FOUND, f"No Flow Service resource at {request.url.path}.", report={"type": "route"}
        )
    else:
        error = flow_error(
            FlowCode.NOT_ENTITLED,
            f"{request.method} is not supported on {request.url.path}.",
            status=exc.status_code,
            title="Method Not Allowed",
        )
    return JSONResponse(error.render(_request_id(request)), status_code=error.status)
