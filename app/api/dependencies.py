"""What a route needs from the runtime, as FastAPI dependencies.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, so
each one costs every request two hand-offs between threads (under the accept benchmark's load that
was a sixth of the API's CPU and most of its tail latency), where these only read an attribute."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import Depends, Request

from .auth import current_client

if TYPE_CHECKING:
    from app.adapters.db.notifications import Notifications
    from app.adapters.db.repository import ActivationRepository
    from app.domain.catalog import DestinationCheck
    from app.services.activations import ActivationService
    from app.services.drift import Reconciler
    from app.services.operations import OperationService
    from app.services.runs import RunQueries
    from app.services.webhooks import WebhookService


def _from_runtime(name: str) -> Callable[[Request], Awaitable[Any]]:
    """The dependency that hands a route the runtime's ``name`` (its type is the Annotated one)."""

    async def provide(request: Request) -> Any:
        return getattr(request.app.state.runtime, name)

    provide.__name__ = name
    return provide


Client = Annotated[str, Depends(current_client)]
Activations = Annotated["ActivationService", Depends(_from_runtime("activations"))]
Repository = Annotated["ActivationRepository", Depends(_from_runtime("repository"))]
Operations = Annotated["OperationService", Depends(_from_runtime("operations"))]
Watcher = Annotated["Notifications", Depends(_from_runtime("notifications"))]
Runs = Annotated["RunQueries", Depends(_from_runtime("run_queries"))]
Reconcile = Annotated["Reconciler", Depends(_from_runtime("reconciler"))]
Destinations = Annotated["DestinationCheck", Depends(_from_runtime("destinations"))]
Webhooks = Annotated["WebhookService", Depends(_from_runtime("webhooks"))]
