"""Adobe IMS OAuth server-to-server tokens: cached, refreshed ahead of expiry, one refresh at a time."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from .errors import FlowServiceError, UpstreamUnavailable
from .redact import sensitive_values

# Refresh this long before the token expires (aepp uses 500 s on 24 h tokens); short tokens refresh at half-life.
_REFRESH_MARGIN_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class Token:
    value: str
    expires_at: float  # time.monotonic() deadline after which we no longer use it


class TokenProvider:
    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        token_url: str,
        client_id: str,
        client_secret: SecretStr,
        scopes: str,
    ) -> None:
        self._http = http
        self._token_url = token_url
        self.client_id = client_id
        self._client_secret = client_secret
        self._scopes = scopes
        self._token: Token | None = None
        self._lock = asyncio.Lock()
        self.refreshes = 0

    async def get(self) -> str:
        token = self._token
        if token is not None and time.monotonic() < token.expires_at:
            return token.value
        async with self._lock:
            token = self._token
            if token is None or time.monotonic() >= token.expires_at:
                token = await self._fetch()
                self._token = token
            return token.value

    async def invalidate(self, rejected: str) -> None:
        """Called after a 401: drop the token unless someone already replaced it."""
        async with self._lock:
            if self._token is not None and self._token.value == rejected:
                self._token = None

    async def _fetch(self) -> Token:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret.get_secret_value(),
            "scope": self._scopes,
        }
        try:
            response = await self._http.post(self._token_url, data=form)
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(method="POST", path="/ims/token/v3", reason=type(exc).__name__) from None
        if response.status_code != 200:
            # An IMS error may quote the form it got: never let the client secret into the error text.
            raise FlowServiceError.from_response(response, path="/ims/token/v3", redact=sensitive_values(form))
        body = response.json()
        lifetime = float(body["expires_in"])
        margin = min(_REFRESH_MARGIN_SECONDS, lifetime / 2)
        self.refreshes += 1
        return Token(value=str(body["access_token"]), expires_at=time.monotonic() + lifetime - margin)
