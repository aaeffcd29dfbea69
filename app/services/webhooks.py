"""The use cases of webhook subscriptions (contract §14): create (the signing secret shown once),
list, read, change, delete and rotate the secret, each scoped to the calling client; the receiver
URL checked as app/domain/webhooks.py says, on the addresses its host resolves to now. Delivery
checks them again at every connection (a name may resolve elsewhere later)."""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from app.domain.ports import Cipher
from app.domain.sftp_hosts import HostAllowList
from app.domain.webhooks import MAX_EVENT_PATTERNS, address_refusal, parse_receiver_url, pattern_refusal
from app.domain.webhooks_model import NewSubscription, Subscription, SubscriptionChange

from .problems import ServiceProblem, invalid

if TYPE_CHECKING:
    from app.adapters.db.webhook_store import WebhookStore

# The host -> addresses lookup: the system resolver, as a connection would use it.
Resolver = Callable[[str, int], Awaitable[list[str]]]
_RESOLVE_TIMEOUT_SECONDS = 5.0
# Standard Webhooks: "whsec_" and the base64 of the key; 32 random bytes, as HMAC-SHA256 wants.
SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _not_found(subscription_id: uuid.UUID) -> ServiceProblem:
    return ServiceProblem(404, "not-found", "Not found", f"no webhook subscription {subscription_id}")


class WebhookService:
    def __init__(
        self,
        store: WebhookStore,
        cipher: Cipher,
        *,
        allowed_hosts: HostAllowList,
        secret_overlap_seconds: float,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._store = store
        self._cipher = cipher
        self._allowed = allowed_hosts
        self._overlap = secret_overlap_seconds
        self._resolve = resolver

    async def create(
        self, client_id: str, *, url: str, events: Sequence[str], description: str | None
    ) -> tuple[Subscription, str]:
        """The new subscription and its signing secret (shown this once)."""
        errors = [*await self._url_errors(url), *_event_errors(events)]
        if errors:
            raise invalid(errors)
        secret = new_secret()
        created = await self._store.insert(
            NewSubscription(
                id=uuid.uuid4(),
                client_id=client_id,
                url=url,
                events=tuple(events),
                description=description,
                secret_ciphertext=self._cipher.encrypt({"secret": secret}),
            )
        )
        return created, secret

    async def subscriptions(self, client_id: str) -> list[Subscription]:
        return await self._store.of_client(client_id)

    async def get(self, subscription_id: uuid.UUID, client_id: str) -> Subscription:
        found = await self._store.get(subscription_id, client_id)
        if found is None:
            raise _not_found(subscription_id)
        return found

    async def update(self, subscription_id: uuid.UUID, client_id: str, change: SubscriptionChange) -> Subscription:
        errors = await self._url_errors(change.url) if change.url is not None else []
        if change.events is not None:
            errors.extend(_event_errors(change.events))
        if errors:
            await self.get(subscription_id, client_id)  # another client's id is a 404, not a 422
            raise invalid(errors)
        updated = await self._store.update(subscription_id, client_id, change)
        if updated is None:
            raise _not_found(subscription_id)
        return updated

    async def delete(self, subscription_id: uuid.UUID, client_id: str) -> None:
        if not await self._store.delete(subscription_id, client_id):
            raise _not_found(subscription_id)

    async def rotate_secret(self, subscription_id: uuid.UUID, client_id: str) -> tuple[Subscription, str]:
        """A new secret (shown this once); the previous one still signs during the overlap."""
        secret = new_secret()
        rotated = await self._store.rotate(
            subscription_id,
            client_id,
            secret_ciphertext=self._cipher.encrypt({"secret": secret}),
            overlap_seconds=self._overlap,
        )
        if rotated is None:
            raise _not_found(subscription_id)
        return rotated, secret

    async def _url_errors(self, url: str) -> list[tuple[str, str]]:
        try:
            receiver = parse_receiver_url(url, self._allowed)
        except ValueError as exc:
            return [("/url", str(exc))]
        try:
            addresses = await asyncio.wait_for(self._resolve(receiver.host, receiver.port), _RESOLVE_TIMEOUT_SECONDS)
        except (OSError, TimeoutError):
            addresses = []
        refusal = address_refusal(receiver, addresses, self._allowed)
        return [] if refusal is None else [("/url", refusal)]


def _event_errors(events: Sequence[str]) -> list[tuple[str, str]]:
    if not events:
        return [("/events", "must name at least one event type")]
    if len(events) > MAX_EVENT_PATTERNS:
        return [("/events", f"at most {MAX_EVENT_PATTERNS} event types")]
    errors = [(f"/events/{i}", refusal) for i, p in enumerate(events) if (refusal := pattern_refusal(p)) is not None]
    if len(set(events)) != len(events):
        errors.append(("/events", "event types must be unique"))
    return errors
