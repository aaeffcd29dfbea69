"""Opaque keyset cursors of the lists: (a timestamp, an id) of the last item of a page — the
activations' (created_at, id), the runs' (started_at, Adobe's run id)."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime


def encode_keyset(at: datetime, key: str) -> str:
    raw = f"{at.astimezone(UTC).isoformat()}|{key}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_keyset(cursor: str) -> tuple[datetime, str]:
    """Raises ValueError on anything that is not a cursor this service issued."""
    padded = cursor + "=" * (-len(cursor) % 4)
    raw = base64.urlsafe_b64decode(padded.encode()).decode()
    at, separator, key = raw.partition("|")
    if not separator or not key:
        raise ValueError("not a cursor")
    return datetime.fromisoformat(at), key


def encode_cursor(created_at: datetime, activation_id: uuid.UUID) -> str:
    return encode_keyset(created_at, str(activation_id))


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    created, ident = decode_keyset(cursor)
    return created, uuid.UUID(ident)
