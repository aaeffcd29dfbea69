"""The Idempotency-Key header (IETF draft "The Idempotency-Key HTTP Header Field") and the
canonical form of a request body that equal requests share."""

from __future__ import annotations

import json
import re
from typing import Any

from .problems import ProblemError

_VISIBLE_ASCII = re.compile(r"^[\x21-\x7e]{1,255}$")
_SF_STRING = re.compile(r'^"((?:[\x20-\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"$')
_ASCII_DIGITS = re.compile(r"[0-9]+")  # not \d or str.isdigit(), which take every script's digits


def parse_idempotency_key(value: str | None) -> str:
    """1 to 255 visible ASCII characters; an RFC 8941 quoted string is the same key as its content."""
    if value is None:
        raise ProblemError(
            400,
            "idempotency-key-missing",
            "Idempotency-Key required",
            "this request needs an Idempotency-Key header (1 to 255 visible ASCII characters)",
        )
    value = value.strip()
    quoted = _SF_STRING.match(value)
    if quoted:
        value = re.sub(r'\\(["\\])', r"\1", quoted.group(1))
    if (value.startswith('"') and not quoted) or not _VISIBLE_ASCII.match(value):
        raise ProblemError(
            400,
            "idempotency-key-malformed",
            "Malformed Idempotency-Key",
            "the Idempotency-Key must be 1 to 255 visible ASCII characters, bare or as a quoted string",
        )
    return value


def canonical_json(document: Any) -> bytes:
    """Key order and whitespace do not matter: two bodies that parse equal compare equal."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def parse_prefer_wait(value: str | None, *, maximum: float = 60.0) -> float | None:
    """RFC 7240 ``Prefer: wait=N`` (other preferences ignored; the first ``wait`` counts), clamped to
    the maximum. N must be ASCII digits: ``str.isdigit()`` also takes "²" and "٣", which ``float()``
    refuses or reads, so a bad value is refused outright rather than guessed at or ignored."""
    if not value:
        return None
    for preference in value.split(","):
        name, _, raw = preference.strip().partition("=")
        if name.strip().lower() != "wait":
            continue
        seconds = raw.split(";")[0].strip()
        if len(seconds) >= 2 and seconds[0] == seconds[-1] == '"':  # RFC 7240 allows a quoted value
            seconds = seconds[1:-1]
        if not _ASCII_DIGITS.fullmatch(seconds):
            raise ProblemError(
                400,
                "invalid-prefer",
                "Invalid Prefer header",
                f"Prefer: wait must be a whole number of seconds in ASCII digits (at most {maximum:g} is used)",
            )
        return min(float(seconds), maximum)
    return None
