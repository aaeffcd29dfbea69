"""Keep credentials out of error texts that come back from Adobe.

Adobe's error bodies may quote the request (a rejected auth parameter, a body echoed in a
"detailed-message"), whole or in part, plain or encoded. Those texts travel on into step errors,
events, API responses and logs. No scrubber can prove that it found every form of a short password,
so for a request that carried credentials the adapter keeps none of Adobe's message
(``CREDENTIALS_WITHHELD``) and only codes and ids that reveal nothing (``reveals``).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import urllib.parse
from collections.abc import Iterable, Iterator
from typing import Any

CREDENTIALS_WITHHELD = "Adobe's message withheld: the request carried credentials"
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
# Any run of this many characters of a credential counts as revealing it (the whole of a shorter
# one): 8 characters of a 10-character password leave two to guess.
PIECE = 8
_JSON_ESCAPE = re.compile(r'\\(?:u([0-9A-Fa-f]{4})|(["\\/bfnrt]))')
_JSON_SIMPLE = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{2,}")  # standard and URL-safe alphabets, padding left off


def sensitive_values(document: Any) -> tuple[str, ...]:
    """Every credential string in a request document (however short), with the forms an echo could
    take that ``reveals`` cannot derive from the text itself."""
    return tuple(dict.fromkeys(_variants(_collect(document))))


def _collect(node: Any, sensitive: bool = False) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _collect(value, sensitive or key in SENSITIVE_KEYS)
    elif isinstance(node, list):
        for item in node:
            yield from _collect(item, sensitive)
    elif sensitive and isinstance(node, str) and node:
        yield node


def _variants(values: Iterable[str]) -> Iterator[str]:
    for value in values:
        yield value
        yield json.dumps(value)[1:-1]  # as quoted inside a JSON string ("\n", "\"")
        try:  # an SSH key is sent as base64 of the PEM text: an echo may show the PEM itself
            decoded = base64.b64decode(value, validate=True).decode("ascii")
        except (binascii.Error, ValueError):
            continue
        if len(decoded) >= PIECE:
            yield decoded


def reveals(text: str, secrets: Iterable[str]) -> bool:
    """Whether ``text`` holds a piece of a secret (PIECE characters, or all of a shorter one), as
    written or once percent-decoding, JSON unescaping or base64 decoding is undone."""
    candidates = {secret for secret in secrets if secret}
    if not text or not candidates:
        return False
    # One string with every reading, NUL-separated so that no piece spans two of them.
    readings = "\0".join(_readings(text))
    windows = {readings[i : i + PIECE] for i in range(len(readings) - PIECE + 1)}
    return any(
        secret in readings if len(secret) <= PIECE else any(piece in windows for piece in _pieces(secret))
        for secret in candidates
    )


def _pieces(secret: str) -> Iterator[str]:
    for start in range(len(secret) - PIECE + 1):
        yield secret[start : start + PIECE]


def _readings(text: str) -> set[str]:
    """``text`` as written and as read back through the encodings an echo may use, also nested
    (a JSON-escaped value inside a URL, a base64 value inside JSON)."""
    readings = {text, urllib.parse.unquote(text), urllib.parse.unquote_plus(text)}
    readings |= {_json_unescape(reading) for reading in readings}
    readings |= {decoded for reading in list(readings) for decoded in _base64_decodings(reading)}
    return readings


def _json_unescape(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        return chr(int(match.group(1), 16)) if match.group(1) else _JSON_SIMPLE[match.group(2)]

    return _JSON_ESCAPE.sub(one, text)


def _base64_decodings(text: str) -> Iterator[str]:
    """Each run of base64 characters decoded from each of its four possible alignments: a value
    encoded inside a longer text need not start at a run's first character."""
    for run in _BASE64_RUN.findall(text):
        standard = run.replace("-", "+").replace("_", "/")
        for shift in range(4):
            chunk = standard[shift:]
            if len(chunk) % 4 == 1:  # a lone last character encodes no whole byte
                chunk = chunk[:-1]
            if chunk:
                yield base64.b64decode(chunk + "=" * (-len(chunk) % 4)).decode("utf-8", "replace")
