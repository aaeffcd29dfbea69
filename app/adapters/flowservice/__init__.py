"""Adobe Flow Service and IMS: an owned, pooled httpx client with typed errors."""

from app.domain.ports import Created, Guard, ResourceKind, UpstreamCall

from .client import FlowServiceClient
from .errors import FlowServiceError, UpstreamUnavailable
from .ims import TokenProvider

__all__ = [
    "Created",
    "FlowServiceClient",
    "FlowServiceError",
    "Guard",
    "ResourceKind",
    "TokenProvider",
    "UpstreamCall",
    "UpstreamUnavailable",
]
