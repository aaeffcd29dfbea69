"""The FastAPI application factory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.adapters.db.unavailable import DATABASE_UNAVAILABLE
from app.api import activations, destinations, health, operations, runs, updates, webhooks
from app.api.middleware import RequestContextMiddleware
from app.api.openapi_doc import enrich
from app.api.problems import Problem, install_problem_handlers
from app.api.schemas import ActivationRequest
from app.runtime import AdobeEndpoints, Deployment, Runtime
from app.settings import Settings

API_DESCRIPTION = """Activate Adobe Experience Platform audiences to an email-marketing destination
in one call. The gateway runs the Flow Service sequence (connections, dataflow, segment activation,
verification) as a durable saga on PostgreSQL, with idempotency keys, retries, crash recovery and
rollback. Errors are RFC 9457 problem details."""


def create_app(settings: Settings | None = None, deployment: Deployment | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = deployment or Deployment(
            database_url=_required(settings.database_url, "DATABASE_URL"),
            adobe=AdobeEndpoints.from_settings(settings),
        )
        runtime = Runtime(settings, resolved)
        app.state.runtime = runtime
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="Activation Gateway",
        version="1.0.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "activations", "description": "Create, follow and roll back activations."},
            {"name": "destinations", "description": "What the gateway can activate to."},
            {"name": "operations", "description": "Health checks and metrics."},
        ],
    )
    app.add_middleware(RequestContextMiddleware)
    install_problem_handlers(app, database_unavailable=DATABASE_UNAVAILABLE)
    app.include_router(activations.router)
    app.include_router(operations.router)
    app.include_router(updates.router)
    app.include_router(runs.router)
    app.include_router(webhooks.router)
    app.include_router(destinations.router)
    app.include_router(health.router)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _required(value: str | None, name: str) -> str:
    if not value:
        raise RuntimeError(f"{name} is required")
    return value


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document plus the schemas of bodies we parse by hand (to answer 413/415 first)."""
    if app.openapi_schema:
        return app.openapi_schema
    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
    )
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    # Every error is a problem document, including FastAPI's own parameter validation errors.
    for path_item in document["paths"].values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if "422" in responses:
                responses["422"] = {
                    "description": "Invalid request",
                    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
    for fastapi_default in ("HTTPValidationError", "ValidationError"):
        schemas.pop(fastapi_default, None)
    for model in (ActivationRequest, Problem):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    enrich(document)
    app.openapi_schema = document
    return document
