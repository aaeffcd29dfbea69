"""What one upstream call looked like, for events, metrics and logs.

The saga sets ``call_context`` (activation id, step, attempt) before calling the client, so the
client can label its calls without knowing about sagas.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

call_context: ContextVar[dict[str, Any] | None] = ContextVar("flowservice_call_context", default=None)

# Where the event rows of upstream calls go while a saga runs: the saga sets one list per activation
# run and writes its contents in the same transaction as the next step outcome it records, instead
# of one transaction per call. Shared by both branches (tasks copy the context, not the list), so the
# rows keep the order in which the calls finished. None: the observer writes each call at once.
call_events: ContextVar[list[dict[str, Any]] | None] = ContextVar("flowservice_call_events", default=None)


@dataclass(frozen=True, slots=True)
class UpstreamCall:
    method: str
    path: str
    endpoint: str  # the path template, e.g. /flows/{id}: a bounded label for metrics
    status: int | None
    duration_ms: float
    request_id: str
    adobe_request_id: str | None
    error: str | None
    context: dict[str, Any] = field(default_factory=dict)


CallObserver = Callable[[UpstreamCall], Awaitable[None]]
