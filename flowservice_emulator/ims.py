"""Adobe IMS ``POST /ims/token/v3`` for OAuth server-to-server (client credentials) tokens (Part 2 §12)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from .config import IMS_TOKEN_PATH
from .errors import ims_error
from .flowservice import emulator_state


def build_router() -> APIRouter:
    router = APIRouter()

    @router.post(IMS_TOKEN_PATH)
    async def issue_token(request: Request) -> JSONResponse:
        state = emulator_state(request)
        config = state.config
        # Fields may also come as query parameters; the form body wins (Adobe recommends the body).
        fields = dict(parse_qsl(request.url.query, keep_blank_values=True))
        media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        if body and media_type != "application/x-www-form-urlencoded":
            raise ims_error(400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        fields |= dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))

        grant_type = fields.get("grant_type")
        if not grant_type:
            raise ims_error(400, "invalid_request", "missing grant_type parameter")
        if grant_type != "client_credentials":
            raise ims_error(400, "unsupported_grant_type", f"unsupported grant_type {grant_type}")
        client_id, client_secret = fields.get("client_id", ""), fields.get("client_secret", "")
        if not client_id:
            raise ims_error(400, "invalid_request", "missing client_id parameter")
        if not client_secret:
            raise ims_error(400, "invalid_request", "missing client_secret parameter")
        if config.client_id is not None and client_id != config.client_id:
            raise ims_error(401, "invalid_client", "invalid client_id parameter")
        if config.client_secret is not None and client_secret != config.client_secret:
            raise ims_error(401, "invalid_client", "invalid client_secret parameter")

        lifetime = config.token_lifetime_seconds
        token = state.tokens.issue(client_id, fields.get("scope", ""), lifetime)
        return JSONResponse(
            {"access_token": token, "token_type": "bearer", "expires_in": lifetime},
            headers={"Cache-Control": "no-store"},
        )

    return router
