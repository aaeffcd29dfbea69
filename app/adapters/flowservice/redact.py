"""Keep credentials out of error texts that come back from Adobe.

Adobe's error bodies may quote the request (a rejected auth parameter, a body echoed in a
"detailed-message"). Those texts travel on into step errors, events, API responses and logs, so they
are scrubbed of every credential the request carried before they leave the adapter.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Iterator
from typing import Any

REDACTED = "[redacted]"
WITHHELD = "[upstream message withheld: it quoted credential material]"
# Field names under which Flow Service requests (auth.params) and IMS forms carry credentials.
SENSITIVE_KEYS = frozenset(
    {
        "secretKey",
        "s3SecretKey",
        "accessId",
        "s3AccessKey",
        "password",
        "sshKey",
        "privateKey",
        "client_secret",
    }
)
_SHORTEST = 4  # shorter values would redact ordinary words
# A quoted fragment at least this long (and aligned windows half as far apart) counts as a leak even
# when the whole value is not there, e.g. cut by Adobe's or our own truncation.
_FRAGMENT = 12


def sensitive_values(document: Any) -> tuple[str, ...]:
    """Every credential string in a request document, with the forms an echo could take."""
    return tuple(dict.fromkeys(_variants(_collect(document))))


def _collect(node: Any, sensitive: bool = False) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _collect(value, sensitive or key in SENSITIVE_KEYS)
    elif isinstance(node, list):
        for item in node:
            yield from _collect(item, sensitive)
    elif sensitive and isinstance(node, str) and len(node) >= _SHORTEST:
        yield node


def _variants(values: Iterable[str]) -> Iterator[str]:
    for value in values:
        yield value
        escaped = json.dumps(value)[1:-1]  # as quoted inside a JSON string ("\/", "\n")
        if escaped != value:
            yield escaped
        try:  # an SSH key is sent as base64 of the PEM text: an echo may show the PEM itself
            decoded = base64.b64decode(value, validate=True).decode("ascii")
        except (binascii.Error, ValueError):
            continue
        if len(decoded) >= _SHORTEST:
            yield decoded


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret replaced; withheld entirely if a long fragment of one remains."""
    ordered = sorted({s for s in secrets if len(s) >= _SHORTEST}, key=len, reverse=True)
    for secret in ordered:
        text = text.replace(secret, REDACTED)
    for secret in ordered:
        if len(secret) < 2 * _FRAGMENT:
            continue
        for start in range(0, len(secret) - _FRAGMENT + 1, _FRAGMENT // 2):
            if secret[start : start + _FRAGMENT] in text:
                return WITHHELD
    return text
