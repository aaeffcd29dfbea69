"""IMS access tokens and the Adobe I/O gateway checks made before any Flow Service call.

Tokens look like IMS tokens (an unsigned JWT whose payload carries ``client_id``, ``created_at`` and
``expires_in`` in milliseconds, like Adobe's), but the emulator trusts only its own registry: a token is
valid when it was issued here, has not expired and has not been expired through the admin API.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Final

from .config import DEFAULT_SANDBOX, EmulatorConfig
from .errors import ApiError, FlowCode, flow_error, gateway_error

_SANDBOX_NAMESPACE: Final = uuid.UUID("0d7b3a8e-5f52-4b0e-9a51-4f7c7f4f2f5b")


@dataclass
class IssuedToken:
    client_id: str
    expires_at: float  # time.monotonic() deadline


@dataclass(frozen=True)
class Caller:
    """Who is calling and where: the identity every Flow Service handler works with.

    ``person`` is set for a person signed in to Adobe's UI (the admin API's out-of-band edits): they act
    as themselves, where server-to-server credentials act as a technical account."""

    client_id: str
    org_id: str
    sandbox: str
    person: str | None = None

    @property
    def user(self) -> str:
        """What ``createdBy``/``updatedBy`` show for this caller."""
        return self.person if self.person is not None else _technical_account(self.client_id)

    @property
    def sandbox_id(self) -> str:
        return _sandbox_id(self.org_id, self.sandbox)


# Both are pure functions of a handful of distinct values, asked for several times per request.
@functools.lru_cache(maxsize=1024)
def _technical_account(client_id: str) -> str:
    # Server-to-server credentials act as a technical account, shown as <hash>@techacct.adobe.com.
    digest = hashlib.sha1(client_id.encode()).hexdigest()[:24].upper()
    return f"{digest}@techacct.adobe.com"


@functools.lru_cache(maxsize=1024)
def _sandbox_id(org_id: str, sandbox: str) -> str:
    return str(uuid.uuid5(_SANDBOX_NAMESPACE, f"{org_id}/{sandbox}"))


class TokenRegistry:
    def __init__(self) -> None:
        self._tokens: dict[str, IssuedToken] = {}

    def issue(self, client_id: str, scope: str, lifetime_seconds: int) -> str:
        now_ms = int(time.time() * 1000)
        header = {"alg": "RS256", "x5u": "ims_na1-key-at-1.cer", "kid": "ims_na1-key-at-1", "itt": "at"}
        payload = {
            "id": f"{now_ms}_{uuid.uuid4()}_ue1",
            "type": "access_token",
            "client_id": client_id,
            "user_id": f"{client_id}@techacct.adobe.com",
            "as": "ims-na1",
            "aa_id": f"{client_id}@techacct.adobe.com",
            "scope": scope,
            "created_at": str(now_ms),
            "expires_in": str(lifetime_seconds * 1000),
        }
        token = ".".join([_b64(header), _b64(payload), secrets.token_urlsafe(32)])
        self._tokens[token] = IssuedToken(client_id, time.monotonic() + lifetime_seconds)
        return token

    def client_of(self, token: str) -> str | None:
        """The client id a live token was issued to, or ``None``."""
        issued = self._tokens.get(token)
        if issued is None or time.monotonic() >= issued.expires_at:
            return None
        return issued.client_id

    def expire_all(self) -> int:
        now = time.monotonic()
        for issued in self._tokens.values():
            issued.expires_at = min(issued.expires_at, now)
        return len(self._tokens)

    def clear(self) -> None:
        self._tokens.clear()

    def __len__(self) -> int:
        return len(self._tokens)


# Every header authenticate() reads: a caller may leave the others out of ``headers``.
AUTH_HEADERS: Final = frozenset({"x-api-key", "authorization", "x-gw-ims-org-id", "x-sandbox-name"})


def authenticate(headers: dict[str, str], tokens: TokenRegistry, config: EmulatorConfig) -> Caller:
    """Apply the gateway's header rules in the order Adobe I/O reports them; ``headers`` keys are lower case.

    A missing token is answered like an invalid one (401 ``401013``), as Part 1.1 prescribes; Adobe I/O is
    also documented to say 403 ``403010`` "Oauth token is missing" in that case.
    """
    api_key = headers.get("x-api-key", "").strip()
    if not api_key:
        raise gateway_error(403, "403000", "Api Key is required")
    client_id = tokens.client_of(_bearer(headers.get("authorization", "")))
    if client_id is None:
        raise gateway_error(401, "401013", "Oauth token is not valid")
    if api_key != client_id:
        raise gateway_error(403, "403003", "Api Key is invalid")
    org_id = headers.get("x-gw-ims-org-id", "").strip()
    if not org_id:
        raise gateway_error(400, "400003", "Missing header: x-gw-ims-org-id")
    if config.org_id is not None and org_id != config.org_id:
        raise _org_error(org_id)
    sandbox = headers.get("x-sandbox-name", "").strip() or DEFAULT_SANDBOX
    return Caller(client_id=client_id, org_id=org_id, sandbox=sandbox)


def _org_error(org_id: str) -> ApiError:
    return flow_error(FlowCode.ORG_NOT_ALLOWED, f"The access token has no access to the IMS org {org_id}.")


def _bearer(value: str) -> str:
    scheme, _, token = value.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")
