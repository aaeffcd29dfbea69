"""A use case's refusal as an RFC 9457 problem; the API renders it (app/api/problems.py)."""

from __future__ import annotations

from collections.abc import Sequence


class ServiceProblem(Exception):
    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        errors: Sequence[tuple[str, str]] = (),
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.title = title
        self.detail = detail
        self.errors = list(errors)  # (JSON pointer, message) of each field that failed validation
        self.headers = headers or {}


def invalid(errors: Sequence[tuple[str, str]]) -> ServiceProblem:
    """The 422 of a request whose fields failed the rules: (JSON pointer, message) each."""
    return ServiceProblem(
        422, "validation-error", "Invalid request", f"{len(errors)} field(s) failed validation", errors=errors
    )
