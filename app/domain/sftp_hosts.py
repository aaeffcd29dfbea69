"""Which SFTP hosts may be sent to Adobe. Adobe connects to the SFTP host from its own network, so a
name or address that is local by definition (loopback, link-local where cloud metadata services
answer, private ranges, local names) would reach a host there, never the customer's server: it is
refused unless an operator allows it (SFTP_ALLOWED_HOSTS). Pure rules, used by the API's validation
and by the settings."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# A last label that resolvers read as a number makes the whole name an IPv4 address in another
# spelling ("2130706433", "0x7f000001", "127.0.0.0x1" are all 127.0.0.1 to inet_aton).
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9A-Fa-f]*")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Adobe connects to the SFTP host from its own network: these names and addresses reach hosts there
# (its loopback, its cloud's metadata service, its private ranges), never the customer's server.
_PRIVATE_USE_SUFFIXES = (".local", ".localdomain", ".internal", ".home.arpa")  # RFC 6762, RFC 8375, ICANN
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7")
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are an IPv4 address
SFTP_HOSTS_SETTING = "SFTP_ALLOWED_HOSTS"


def parse_sftp_host(value: str) -> str:
    """A host name or IP address as Adobe is to get it. An IPv6 address may be given bare or in one
    pair of brackets and is returned bare; brackets around anything else are refused."""
    if value.startswith("[") and value.endswith("]"):
        if not isinstance(ip_literal(value[1:-1]), ipaddress.IPv6Address):
            raise ValueError("brackets are only allowed as one pair around an IPv6 address")
        return value[1:-1]
    if "[" in value or "]" in value:
        raise ValueError("brackets are only allowed as one pair around an IPv6 address")
    if "://" in value or "/" in value or "@" in value:
        raise ValueError("must be a hostname or IP address without scheme, user or path")
    if ip_literal(value) is not None:
        return value
    labels = value.removesuffix(".").split(".")
    if not all(_HOSTNAME_LABEL.fullmatch(label) for label in labels) or _NUMERIC_LABEL.fullmatch(labels[-1]):
        # The second test: "999.1.1.1" or "10.0.0" is neither an IP address nor a hostname.
        raise ValueError("is not a valid hostname or IP address")
    return value


def ip_literal(text: str) -> IpAddress | None:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return None  # "fe80::1%eth0": a zone names an interface of whoever connects, here Adobe's
    return address


def _embedded_ipv4(address: IpAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, NAT64, 6to4): where a connection really goes."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def internal_host_kind(host: str) -> str | None:
    """What makes ``host`` (as parse_sftp_host returns it) lead into the network of whoever connects,
    or None. DNS names are not resolved (Adobe resolves them): only names that are local by
    definition count, and a public name may still resolve to a private address."""
    address = ip_literal(host)
    if address is None:
        name = host.removesuffix(".").lower()
        if name == "localhost" or name.endswith(".localhost"):  # RFC 6761
            return "a loopback name"
        if "." not in name:
            return "a single-label name (resolved against the connecting network's search domains)"
        if name.endswith(_PRIVATE_USE_SUFFIXES):
            return "a private-use name"
        return None
    embedded = _embedded_ipv4(address)
    address = embedded if embedded is not None else address
    # The order matters: Python's is_private also covers loopback, link-local and more.
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address (where cloud metadata services answer)"
    if address.is_multicast:
        return "a multicast address"
    if any(address in network for network in _PRIVATE_NETWORKS):
        return "a private address"
    if address.is_reserved or not address.is_global:  # Python 3.11 counts reserved IPv6 as global
        return "a special-purpose address (not globally routable)"
    return None


@dataclass(frozen=True, slots=True)
class HostAllowList:
    """The setting SFTP_ALLOWED_HOSTS: hosts an operator allows although internal_host_kind refuses
    them. It only makes exceptions; it does not restrict other hosts."""

    names: frozenset[str] = frozenset()
    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, text: str) -> HostAllowList:
        """Comma-separated host names, IP addresses and CIDR ranges, e.g. ``sftp.internal,10.20.0.0/16``."""
        names: set[str] = set()
        networks: list[IpNetwork] = []
        for entry in (part.strip() for part in text.split(",")):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            try:
                host = parse_sftp_host(entry)  # a name, or a bracketed IPv6 address
            except ValueError:
                raise ValueError(f"{entry!r} is neither a host name nor an IP address or CIDR range") from None
            address = ip_literal(host)
            if address is None:
                names.add(host.removesuffix(".").lower())
            else:
                networks.append(ipaddress.ip_network(address))
        return cls(frozenset(names), tuple(networks))

    def allows(self, host: str) -> bool:
        address = ip_literal(host)
        if address is None:
            return host.removesuffix(".").lower() in self.names
        candidates = [address, _embedded_ipv4(address)]
        return any(c is not None and c in network for c in candidates for network in self.networks)


def sftp_host_refusal(host: str, allowed: HostAllowList) -> str | None:
    """Why ``host`` may not be sent to Adobe, as a validation message; None if it may."""
    kind = internal_host_kind(host)
    if kind is None or allowed.allows(host):
        return None
    return f"is {kind}: Adobe would connect to a host of its own network; {SFTP_HOSTS_SETTING} can allow it"
