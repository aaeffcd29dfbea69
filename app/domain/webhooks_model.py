"""The webhook subscription as the gateway keeps it (contract §14); its secret is not here: it
is shown once, when made or rotated, and otherwise only read (decrypted) to sign deliveries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class NewSubscription:
    id: uuid.UUID
    client_id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    secret_ciphertext: str


@dataclass(frozen=True, slots=True)
class Subscription:
    id: uuid.UUID
    client_id: str
    url: str
    events: tuple[str, ...]
    description: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    previous_secret_until: datetime | None  # after a rotation, the previous secret signs until then


@dataclass(frozen=True, slots=True)
class SubscriptionChange:
    """A PATCH of a subscription: None keeps a member (description: unless set_description)."""

    url: str | None = None
    events: tuple[str, ...] | None = None
    set_description: bool = False
    description: str | None = None
    enabled: bool | None = None
