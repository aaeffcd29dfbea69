"""Emulator settings shared by the app factory, the in-process server and the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

BASE_PATH = "/data/foundation/flowservice"
ADHOC_BASE_PATH = "/data/core/activation/disflowprovider"  # the ad-hoc activation service, beside it
IMS_TOKEN_PATH = "/ims/token/v3"
ADMIN_PATH = "/_emulator"
DEFAULT_SANDBOX = "prod"


@dataclass(frozen=True)
class EmulatorConfig:
    """``client_id``/``client_secret`` set: IMS only issues tokens for that pair. ``org_id`` set: Flow Service
    only accepts that ``x-gw-ims-org-id``; ``None`` accepts any org. ``state_file`` set: the resources are
    loaded from that JSON file at start and saved to it on every change (:mod:`.persistence`)."""

    token_lifetime_seconds: int = 86399  # what IMS answers for a 24-hour token (Part 2 §12)
    client_id: str | None = None
    client_secret: str | None = None
    org_id: str | None = None
    history_limit: int = 20000  # oldest request-history entries are dropped beyond this
    state_file: Path | None = None
