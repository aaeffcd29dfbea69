"""What a route needs from the runtime, as FastAPI dependencies.

They are ``async def`` on purpose: FastAPI runs a plain ``def`` dependency in its thread pool, so
each one costs every request two hand-offs between threads (under the accept benchmark's load that
was a sixth of the API's CPU and most of its tail latency), where these only read an attribute."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

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


async def activation_service(request: Request) -> ActivationService:
    service: ActivationService = request.app.state.runtime.activations
    return service


async def activation_repository(request: Request) -> ActivationRepository:
    repository: ActivationRepository = request.app.state.runtime.repository
    return repository


async def operation_service(request: Request) -> OperationService:
    service: OperationService = request.app.state.runtime.operations
    return service


async def notifications(request: Request) -> Notifications:
    watcher: Notifications = request.app.state.runtime.notifications
    return watcher


async def run_queries(request: Request) -> RunQueries:
    queries: RunQueries = request.app.state.runtime.run_queries
    return queries


async def reconciler(request: Request) -> Reconciler:
    service: Reconciler = request.app.state.runtime.reconciler
    return service


async def webhook_service(request: Request) -> WebhookService:
    service: WebhookService = request.app.state.runtime.webhooks
    return service


async def destination_check(request: Request) -> DestinationCheck:
    check: DestinationCheck = request.app.state.runtime.destinations
    return check


Client = Annotated[str, Depends(current_client)]
Activations = Annotated["ActivationService", Depends(activation_service)]
Repository = Annotated["ActivationRepository", Depends(activation_repository)]
Operations = Annotated["OperationService", Depends(operation_service)]
Watcher = Annotated["Notifications", Depends(notifications)]
Runs = Annotated["RunQueries", Depends(run_queries)]
Reconcile = Annotated["Reconciler", Depends(reconciler)]
Destinations = Annotated["DestinationCheck", Depends(destination_check)]
Webhooks = Annotated["WebhookService", Depends(webhook_service)]
