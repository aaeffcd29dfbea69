"""RFC 9457 problems for a step that failed for good: the domain's own refusals and Adobe's."""

from __future__ import annotations

from typing import Any

from .errors import StepFailed
from .ports import UpstreamError

PROBLEM_BASE = "urn:activation-gateway:problem:"


def problem_from_domain(step: str, exc: StepFailed) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + exc.type,
        "title": exc.title,
        "detail": exc.detail,
        "step": step,
        **exc.extra,
    }


def problem_from_upstream(step: str, exc: UpstreamError) -> dict[str, Any]:
    upstream = exc.to_problem()
    status = upstream.get("upstreamStatus")
    return {
        "type": PROBLEM_BASE + "upstream-error",
        "title": "Adobe Flow Service call failed",
        "status": 502,
        "detail": f"step {step}: {upstream['upstreamCall']} failed"
        + (f" with {status} {upstream.get('upstreamCode') or ''}".rstrip() if status else "")
        + f": {upstream.get('upstreamMessage')}",
        "step": step,
        **upstream,
    }
