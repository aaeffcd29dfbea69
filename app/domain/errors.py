"""Domain failures that end a step for good (as opposed to upstream hiccups, which are retried)."""

from __future__ import annotations

from typing import Any


class StepFailed(Exception):
    """A permanent failure of a step, with an RFC 9457 problem describing it."""

    def __init__(self, title: str, detail: str, *, type_: str = "step-failed", extra: dict[str, Any] | None = None):
        super().__init__(detail)
        self.title = title
        self.detail = detail
        self.type = type_
        self.extra = extra or {}
