"""/destinations: what the gateway can activate to; and the same catalog screening new activations."""

from __future__ import annotations

from typing import Literal

import structlog
from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from app.domain.catalog import CatalogUnavailable, Destination

from .auth import current_client
from .dependencies import Destinations
from .problems import ProblemError, problem_responses

router = APIRouter(tags=["destinations"])
log = structlog.get_logger(__name__)

# How soon a caller may ask again when Adobe did not answer in time.
_CATALOG_RETRY_AFTER_SECONDS = "5"


class AvailableDestination(BaseModel):
    name: str = Field(description="The value of `destination` in `POST /activations` (any case).")
    connectionSpecId: str
    flowSpecId: str = Field(description="The flow spec linking the Profile store to this destination.")
    storage: list[Literal["s3", "sftp"]] = Field(description="The `storage.type` values it accepts.")
    sftpAuth: list[Literal["password", "sshKey"]] = Field(
        description="The SFTP credentials it accepts (`storage.password` or `storage.sshKey`); empty without SFTP."
    )


class DestinationList(BaseModel):
    items: list[AvailableDestination]


_EXAMPLE = {
    "items": [
        {
            "name": "Adobe Campaign",
            "connectionSpecId": "0b23e41a-cb4a-4321-a78f-3b654f5d7d97",
            "flowSpecId": "71471eba-b620-49e4-90fd-23f1fa0174d8",
            "storage": ["s3", "sftp"],
            "sftpAuth": ["password", "sshKey"],
        },
        {
            "name": "Oracle Eloqua",
            "connectionSpecId": "c1e44b6b-e7c8-404b-9031-58f0ef760604",
            "flowSpecId": "71471eba-b620-49e4-90fd-23f1fa0174d8",
            "storage": ["sftp"],
            "sftpAuth": ["password", "sshKey"],
        },
    ]
}


def _view(destination: Destination) -> AvailableDestination:
    return AvailableDestination.model_validate(
        {
            "name": destination.name,
            "connectionSpecId": destination.connection_spec_id,
            "flowSpecId": destination.flow_spec_id,
            "storage": list(destination.storage),
            "sftpAuth": list(destination.sftp_auth),
        }
    )


@router.get(
    "/destinations",
    operation_id="listDestinations",
    summary="The destinations the gateway can activate to, and the storage each accepts",
    description=(
        "Read from Adobe's connection-spec and flow-spec catalog (cached for `SPEC_CACHE_TTL_SECONDS`). "
        "`POST /activations` refuses, with `422`, a destination, storage type or SFTP credential not "
        "listed here."
    ),
    response_model=DestinationList,
    responses={
        200: {"content": {"application/json": {"example": _EXAMPLE}}},
        **problem_responses(401, 500, 503),
    },
    dependencies=[Depends(current_client)],
    # The bearer scheme app/api/openapi_doc.py declares; it adds it to /activations* by itself.
    openapi_extra={"security": [{"bearerAuth": []}]},
)
async def list_destinations(check: Destinations) -> DestinationList:
    try:
        destinations = await check.listing()
    except CatalogUnavailable as exc:
        log.warning("destination catalog unreadable", reason=str(exc))
        raise ProblemError(
            503,
            "catalog-unavailable",
            "Destination catalog unavailable",
            "Adobe's Flow Service catalog could not be read in time; retry shortly",
            headers={"Retry-After": _CATALOG_RETRY_AFTER_SECONDS},
        ) from None
    return DestinationList(items=[_view(d) for d in destinations])
