"""Emulator settings shared by the app factory, the in-process server and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

BASE_PATH = "/data/foundation/flowservice"
IMS_TOKEN_PATH = "/ims/token/v3"
ADMIN_PATH = "/_emulator"
DEFAULT_SANDBOX = "prod"


@dataclass(frozen=True)
class EmulatorConfig:
    """``client_id``/``client_secret`` set: IMS only issues tokens for that pair. ``org_id`` set: Flow Service
    only accepts that ``x-gw-ims-org-id``; ``None`` accepts any org."""

    token_lifetime_seconds: int = 86399  # what IMS answers for a 24-hour token (Part 2 §12)
    client_id: str | None = None
    client_secret: str | None = None
    org_id: str | None = None
    history_limit: int = 20000  # oldest request-history entries are dropped beyond this
