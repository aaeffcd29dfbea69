"""Adobe Flow Service and IMS: an owned, pooled httpx client with typed errors."""

from .client import Created, FlowServiceClient, Guard, ResourceKind
from .errors import FlowServiceError, UpstreamUnavailable
from .ims import TokenProvider
from .observe import UpstreamCall, call_context, call_events

__all__ = [
    "Created",
    "FlowServiceClient",
    "FlowServiceError",
    "Guard",
    "ResourceKind",
    "TokenProvider",
    "UpstreamCall",
    "UpstreamUnavailable",
    "call_context",
    "call_events",
]
