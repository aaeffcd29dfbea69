"""The observer the composition root gives the client: metrics and logs of every upstream call.
An operation's own record of its calls is the CallLog its leased wrapper passes with each call
(app/domain/upstream.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from app.domain.ports import UpstreamCall

CallObserver = Callable[[UpstreamCall], Awaitable[None]]

__all__ = ["CallObserver", "UpstreamCall"]
