"""Webhook subscriptions (contract §14), scoped to the calling client: named statements on the
API's statement pool. A client never reads or changes another's: every statement names both."""

from __future__ import annotations

import uuid
from typing import Any

from psycopg.types.json import Jsonb

from app.domain.webhooks_model import NewSubscription, Subscription, SubscriptionChange

from .statements import StatementPool

_COLUMNS = "id, client_id, url, events, description, enabled, created_at, updated_at, previous_secret_until"

INSERT_SUBSCRIPTION = f"""
INSERT INTO webhook_subscriptions (id, client_id, url, events, description, secret_ciphertext)
VALUES (%(id)s, %(client_id)s, %(url)s, %(events)s, %(description)s, %(secret)s)
RETURNING {_COLUMNS}
"""

LIST_SUBSCRIPTIONS = f"""
SELECT {_COLUMNS} FROM webhook_subscriptions
 WHERE client_id = %(client_id)s
 ORDER BY created_at, id
"""

GET_SUBSCRIPTION = f"""
SELECT {_COLUMNS} FROM webhook_subscriptions WHERE id = %(id)s AND client_id = %(client_id)s
"""

# A member given as null keeps its value, but for description, which %(set_description)s sets (to null too).
UPDATE_SUBSCRIPTION = f"""
UPDATE webhook_subscriptions
   SET url = coalesce(%(url)s, url),
       events = coalesce(%(events)s, events),
       description = CASE WHEN %(set_description)s THEN %(description)s ELSE description END,
       enabled = coalesce(%(enabled)s, enabled),
       updated_at = now()
 WHERE id = %(id)s AND client_id = %(client_id)s
RETURNING {_COLUMNS}
"""

DELETE_SUBSCRIPTION = """
DELETE FROM webhook_subscriptions WHERE id = %(id)s AND client_id = %(client_id)s
"""

# The current secret becomes the previous one, which still signs until the overlap ends.
ROTATE_SECRET = f"""
UPDATE webhook_subscriptions
   SET previous_secret_ciphertext = secret_ciphertext,
       previous_secret_until = now() + make_interval(secs => %(overlap)s),
       secret_ciphertext = %(secret)s,
       updated_at = now()
 WHERE id = %(id)s AND client_id = %(client_id)s
RETURNING {_COLUMNS}
"""


class WebhookStore:
    def __init__(self, db: StatementPool) -> None:
        self._db = db

    async def insert(self, new: NewSubscription) -> Subscription:
        row = await self._db.fetchone(
            INSERT_SUBSCRIPTION,
            {
                "id": new.id,
                "client_id": new.client_id,
                "url": new.url,
                "events": Jsonb(list(new.events)),
                "description": new.description,
                "secret": new.secret_ciphertext,
            },
        )
        assert row is not None  # an INSERT … RETURNING answers its row
        return _subscription(row)

    async def of_client(self, client_id: str) -> list[Subscription]:
        rows = await self._db.fetchall_rows(LIST_SUBSCRIPTIONS, {"client_id": client_id})
        return [_subscription(row) for row in rows]

    async def get(self, subscription_id: uuid.UUID, client_id: str) -> Subscription | None:
        row = await self._db.fetchone(GET_SUBSCRIPTION, {"id": subscription_id, "client_id": client_id})
        return None if row is None else _subscription(row)

    async def update(
        self, subscription_id: uuid.UUID, client_id: str, change: SubscriptionChange
    ) -> Subscription | None:
        row = await self._db.fetchone(
            UPDATE_SUBSCRIPTION,
            {
                "id": subscription_id,
                "client_id": client_id,
                "url": change.url,
                "events": Jsonb(list(change.events)) if change.events is not None else None,
                "set_description": change.set_description,
                "description": change.description,
                "enabled": change.enabled,
            },
        )
        return None if row is None else _subscription(row)

    async def delete(self, subscription_id: uuid.UUID, client_id: str) -> bool:
        return await self._db.execute(DELETE_SUBSCRIPTION, {"id": subscription_id, "client_id": client_id}) == 1

    async def rotate(
        self, subscription_id: uuid.UUID, client_id: str, *, secret_ciphertext: str, overlap_seconds: float
    ) -> Subscription | None:
        row = await self._db.fetchone(
            ROTATE_SECRET,
            {"id": subscription_id, "client_id": client_id, "secret": secret_ciphertext, "overlap": overlap_seconds},
        )
        return None if row is None else _subscription(row)


def _subscription(row: dict[str, Any]) -> Subscription:
    return Subscription(
        id=row["id"],
        client_id=row["client_id"],
        url=row["url"],
        events=tuple(row["events"]),
        description=row["description"],
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        previous_secret_until=row["previous_secret_until"],
    )
