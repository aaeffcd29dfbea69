"""Opaque keyset cursors of the activation lists: (created_at, id) of the last item of a page."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime


def encode_cursor(created_at: datetime, activation_id: uuid.UUID) -> str:
    raw = f"{created_at.astimezone(UTC).isoformat()}|{activation_id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    """Raises ValueError on anything that is not a cursor this service issued."""
    padded = cursor + "=" * (-len(cursor) % 4)
    raw = base64.urlsafe_b64decode(padded.encode()).decode()
    created, _, ident = raw.partition("|")
    return datetime.fromisoformat(created), uuid.UUID(ident)
