"""Webhook subscriptions (contract §14): HTTP only; the rules are app/services/webhooks.py's."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from app.domain.webhooks import EVENT_TYPES, MAX_EVENT_PATTERNS
from app.domain.webhooks_model import Subscription, SubscriptionChange

from .dependencies import Client, Webhooks
from .operations import parse_id
from .problems import problem_responses
from .schemas import Strict

router = APIRouter(tags=["webhooks"])

_EVENTS_DOC = (
    f"Event types ({', '.join(EVENT_TYPES)}), a group's wildcard such as `activation.*`, or `*`;"
    f" 1 to {MAX_EVENT_PATTERNS}, unique."
)


class WebhookRequest(Strict):
    url: str = Field(
        min_length=1,
        max_length=2048,
        description="`https` (plain `http` only to a host in WEBHOOK_ALLOWED_HOSTS); not an internal address.",
        examples=["https://hooks.example.com/activation-gateway"],
    )
    events: list[str] = Field(description=_EVENTS_DOC, examples=[["activation.*", "run.failed"]])
    description: str | None = Field(default=None, max_length=500)


class WebhookPatch(Strict):
    """A JSON merge patch of a subscription: members left out keep their value."""

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    events: list[str] | None = Field(default=None, description=_EVENTS_DOC)
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str | None
    enabled: bool
    createdAt: datetime
    updatedAt: datetime
    previousSecretExpiresAt: datetime | None = Field(
        description="After a rotation, until when the previous secret still signs as well; null otherwise."
    )


class WebhookWithSecret(WebhookOut):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, `whsec_…`), shown only in this answer: store it now."
    )


class WebhookList(BaseModel):
    items: list[WebhookOut]


def _view(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "url": subscription.url,
        "events": list(subscription.events),
        "description": subscription.description,
        "enabled": subscription.enabled,
        "createdAt": subscription.created_at,
        "updatedAt": subscription.updated_at,
        "previousSecretExpiresAt": subscription.previous_secret_until,
    }


def _json(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json"), status_code=status_code, headers=headers)


@router.post(
    "/webhooks",
    status_code=201,
    operation_id="createWebhook",
    summary="Subscribe to events",
    response_model=WebhookWithSecret,
    responses={
        201: {"description": "Created; the secret is shown only here."},
        **problem_responses(400, 401, 413, 415, 422, 503),
    },
)
async def create_webhook(body: WebhookRequest, client: Client, service: Webhooks) -> Response:
    created, secret = await service.create(client, url=body.url, events=body.events, description=body.description)
    answer = WebhookWithSecret.model_validate({**_view(created), "secret": secret})
    return _json(answer, 201, headers={"Location": f"/webhooks/{created.id}", "Cache-Control": "no-store"})


@router.get(
    "/webhooks",
    operation_id="listWebhooks",
    summary="The caller's subscriptions",
    response_model=WebhookList,
    responses=problem_responses(401, 503),
)
async def list_webhooks(client: Client, service: Webhooks) -> Response:
    return _json(WebhookList.model_validate({"items": [_view(s) for s in await service.subscriptions(client)]}))


@router.get(
    "/webhooks/{webhook_id}",
    operation_id="getWebhook",
    summary="One subscription",
    response_model=WebhookOut,
    responses=problem_responses(401, 404, 503),
)
async def get_webhook(webhook_id: str, client: Client, service: Webhooks) -> Response:
    found = await service.get(parse_id(webhook_id, "webhook subscription"), client)
    return _json(WebhookOut.model_validate(_view(found)))


@router.patch(
    "/webhooks/{webhook_id}",
    operation_id="updateWebhook",
    summary="Change a subscription (JSON merge patch)",
    response_model=WebhookOut,
    responses=problem_responses(400, 401, 404, 413, 415, 422, 503),
)
async def update_webhook(webhook_id: str, body: WebhookPatch, client: Client, service: Webhooks) -> Response:
    given = body.model_fields_set
    change = SubscriptionChange(
        url=body.url,
        events=tuple(body.events) if body.events is not None else None,
        set_description="description" in given,
        description=body.description,
        enabled=body.enabled,
    )
    updated = await service.update(parse_id(webhook_id, "webhook subscription"), client, change)
    return _json(WebhookOut.model_validate(_view(updated)))


@router.delete(
    "/webhooks/{webhook_id}",
    status_code=204,
    operation_id="deleteWebhook",
    summary="Unsubscribe",
    responses={204: {"description": "Deleted."}, **problem_responses(401, 404, 503)},
)
async def delete_webhook(webhook_id: str, client: Client, service: Webhooks) -> Response:
    await service.delete(parse_id(webhook_id, "webhook subscription"), client)
    return Response(status_code=204)


@router.post(
    "/webhooks/{webhook_id}/rotate-secret",
    operation_id="rotateWebhookSecret",
    summary="A new signing secret; the previous one signs too until `previousSecretExpiresAt`",
    response_model=WebhookWithSecret,
    responses=problem_responses(401, 404, 503),
)
async def rotate_webhook_secret(webhook_id: str, client: Client, service: Webhooks) -> Response:
    rotated, secret = await service.rotate_secret(parse_id(webhook_id, "webhook subscription"), client)
    answer = WebhookWithSecret.model_validate({**_view(rotated), "secret": secret})
    return _json(answer, headers={"Cache-Control": "no-store"})
