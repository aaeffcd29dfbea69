"""Webhook subscriptions (contract §14): the event types a subscription may ask for, how its
patterns match a type, and which receiver URLs are acceptable. Pure rules: the service resolves the
URL's host and hands the addresses in; delivery (the outbox and its workers) builds on these.

A receiver is called from the gateway's own network, so a URL that leads into it (loopback, the
cloud's metadata service on a link-local address, private ranges, local names) is refused unless an
operator allows its host (WEBHOOK_ALLOWED_HOSTS), and so is plain `http` to any other host: the
body is signed, not encrypted. The same rules hold for every address the name resolves to, since
any of them may be the one a connection uses."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from .sftp_hosts import HostAllowList, internal_host_kind, ip_literal

WEBHOOK_HOSTS_SETTING = "WEBHOOK_ALLOWED_HOSTS"

# Contract §14, in the order it lists them.
EVENT_TYPES = (
    "activation.succeeded",
    "activation.failed",
    "activation.rolled_back",
    "activation.rollback_failed",
    "operation.succeeded",
    "operation.failed",
    "activation.drifted",
    "run.succeeded",
    "run.failed",
    "run.delayed",
)
EVENT_GROUPS = tuple(sorted({name.split(".")[0] for name in EVENT_TYPES}))
MAX_EVENT_PATTERNS = 20
MAX_URL_LENGTH = 2048


def pattern_refusal(pattern: str) -> str | None:
    """Why ``pattern`` is not an event type or a group wildcard (``activation.*``), or None."""
    if pattern in EVENT_TYPES or pattern == "*":
        return None
    group, _, rest = pattern.partition(".")
    if rest == "*" and group in EVENT_GROUPS:
        return None
    return f"unknown event type {pattern!r}: one of {', '.join(EVENT_TYPES)}, a group's '<group>.*' or '*'"


def matches(patterns: Iterable[str], event_type: str) -> bool:
    """Whether a subscription with these patterns receives events of ``event_type``."""
    group = event_type.split(".")[0]
    return any(p in ("*", event_type, f"{group}.*") for p in patterns)


@dataclass(frozen=True, slots=True)
class ReceiverUrl:
    url: str
    scheme: str
    host: str  # as the URL names it: a DNS name, or an IP address without brackets
    port: int


def parse_receiver_url(url: str, allowed: HostAllowList) -> ReceiverUrl:
    """The URL's parts, or ValueError saying what is wrong with it (before any name is resolved)."""
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"is longer than {MAX_URL_LENGTH} characters")
    if any(ord(c) <= 32 or ord(c) == 127 for c in url):
        raise ValueError("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is not a valid URL ({exc})") from None
    if parts.scheme not in ("https", "http"):
        raise ValueError("must be an https URL")
    host = parts.hostname
    if not host:
        raise ValueError("names no host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry a user or password (the signature authenticates the gateway)")
    if parts.fragment:
        raise ValueError("must not have a fragment")
    if parts.scheme == "http" and not allowed.allows(host):
        raise ValueError(f"must be an https URL; plain http only to a host in {WEBHOOK_HOSTS_SETTING}")
    default_port = 443 if parts.scheme == "https" else 80
    return ReceiverUrl(url=url, scheme=parts.scheme, host=host, port=port or default_port)


def address_refusal(receiver: ReceiverUrl, addresses: Sequence[str], allowed: HostAllowList) -> str | None:
    """Why the receiver may not be called at these addresses (what its host resolves to), or None.
    A host the operator allows by name is allowed at any address; otherwise each address must be
    public or in an allowed range."""
    if allowed.allows(receiver.host):
        return None
    kind = internal_host_kind(receiver.host)
    if kind is not None and ip_literal(receiver.host) is None:  # a local name, whatever it resolves to
        return f"is {kind}; {WEBHOOK_HOSTS_SETTING} can allow it"
    if not addresses:
        return "does not resolve to any address"
    for address in addresses:
        kind = internal_host_kind(address)
        if kind is not None and not allowed.allows(address):
            shown = "" if address == receiver.host else f" ({receiver.host} resolves to {address})"
            return f"is {kind}{shown}; {WEBHOOK_HOSTS_SETTING} can allow it"
    return None
