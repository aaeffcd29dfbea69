"""Caller authentication (contract §6): bearer API keys, stored only as SHA-256 hashes."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from fastapi import Request

from .problems import ProblemError

DEV_CLIENT = "dev"


@dataclass(frozen=True, slots=True)
class ApiKeyRegistry:
    hashes: tuple[tuple[str, bytes], ...]  # (client id, sha256 digest)
    development: bool

    @classmethod
    def parse(cls, setting: str | None, *, development: bool) -> ApiKeyRegistry:
        entries: list[tuple[str, bytes]] = []
        for item in (setting or "").split(","):
            item = item.strip()
            if not item:
                continue
            client, sep, digest = item.partition(":")
            if not sep or not client or len(digest) != 64:
                raise ValueError("API_KEYS entries must be client:sha256hex")
            entries.append((client.strip(), bytes.fromhex(digest)))
        return cls(hashes=tuple(entries), development=development)

    def identify(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode()).digest()
        found: str | None = None
        for client, expected in self.hashes:  # compare all, in constant time each
            if hmac.compare_digest(digest, expected):
                found = client
        return found


def _unauthorized(detail: str) -> ProblemError:
    return ProblemError(401, "unauthorized", "Unauthorized", detail, headers={"WWW-Authenticate": "Bearer"})


async def current_client(request: Request) -> str:
    registry: ApiKeyRegistry = request.app.state.runtime.api_keys
    header = request.headers.get("authorization")
    if header is None:
        if registry.development:
            return DEV_CLIENT
        raise _unauthorized("an API key is required: Authorization: Bearer <key>")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _unauthorized("the Authorization header must be 'Bearer <key>'")
    client = registry.identify(key.strip())
    if client is None:
        raise _unauthorized("the API key is not valid")
    return client
