"""SFTP hosts (defect 10): their syntax, which ones lead into Adobe's own network, and the
SFTP_ALLOWED_HOSTS exceptions."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.domain.sftp_hosts import HostAllowList, internal_host_kind, parse_sftp_host, sftp_host_refusal
from app.settings import Settings


# ------------------------------------------------------------------------------ syntax
@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("sftp.example.com", "sftp.example.com"),
        ("sftp.example.com.", "sftp.example.com."),
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::10", "2001:db8::10"),
        ("[2001:db8::10]", "2001:db8::10"),  # brackets accepted, and dropped
        ("[::ffff:8.8.8.8]", "::ffff:8.8.8.8"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("0x.example.com", "0x.example.com"),  # only the last label makes a name a number
    ],
)
def test_valid_hosts(value: str, parsed: str) -> None:
    assert parse_sftp_host(value) == parsed


@pytest.mark.parametrize(
    "value",
    [
        "[::1",
        "::1]",
        "[[::1]]",
        "[]",
        "[203.0.113.7]",
        "[sftp.example.com]",
        "sftp[1].example.com",
        "2001:db8::1%eth0",
        "[fe80::1%25eth0]",
        "sftp.example.com\n",
        "sftp.example.com:22",
        "sftp://sftp.example.com",
        "user@sftp.example.com",
        "a..b",
        "-a.example",
        "999.1.1.1",
        "10.0.0",
        "010.0.0.1",
        "2130706433",
        "0x7f000001",
        "127.0.0.0x1",
        "example.0X1F",
    ],
)
def test_malformed_hosts(value: str) -> None:
    with pytest.raises(ValueError):
        parse_sftp_host(value)


@given(st.text(max_size=40))
def test_parsing_fails_only_with_value_error(value: str) -> None:
    try:
        parsed = parse_sftp_host(value)
    except ValueError:
        return
    assert "[" not in parsed and "]" not in parsed and "\n" not in parsed


# ------------------------------------------------------------------------------ classification
@pytest.mark.parametrize(
    ("host", "kind"),
    [
        ("localhost", "loopback name"),
        ("Sftp.LocalHost.", "loopback name"),
        ("sftp", "single-label"),
        ("nas.local", "private-use name"),
        ("sftp.corp.internal", "private-use name"),
        ("router.home.arpa", "private-use name"),
        ("127.0.0.1", "loopback address"),
        ("127.8.9.10", "loopback address"),
        ("::1", "loopback address"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("169.254.169.254", "link-local"),
        ("fe80::abcd", "link-local"),
        ("10.0.0.1", "private address"),
        ("172.16.0.1", "private address"),
        ("172.31.255.255", "private address"),
        ("192.168.0.1", "private address"),
        ("fc00::1", "private address"),
        ("fdff:ffff::1", "private address"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("100.64.0.1", "special-purpose"),
        ("192.0.2.1", "special-purpose"),
        ("198.18.0.1", "special-purpose"),
        ("240.0.0.1", "special-purpose"),
        ("255.255.255.255", "special-purpose"),
        ("0.1.2.3", "special-purpose"),
        ("2001:db8::1", "special-purpose"),
        ("::127.0.0.1", "special-purpose"),  # IPv4-compatible: deprecated, reserved
        ("::ffff:127.0.0.1", "loopback address"),
        ("::ffff:a9fe:a9fe", "link-local"),  # ::ffff:169.254.169.254
        ("::ffff:10.1.2.3", "private address"),
        ("64:ff9b::192.168.1.1", "private address"),
        ("2002:a00:1::1", "private address"),  # 6to4 of 10.0.0.1
    ],
)
def test_hosts_inside_the_connecting_network(host: str, kind: str) -> None:
    found = internal_host_kind(host)
    assert found is not None and kind in found, found


@pytest.mark.parametrize(
    "host",
    ["sftp.example.com", "8.8.8.8", "172.32.0.1", "172.15.255.255", "2606:4700::1111", "::ffff:8.8.8.8", "11.0.0.1"],
)
def test_public_hosts(host: str) -> None:
    assert internal_host_kind(host) is None


@given(st.ip_addresses(v=4))
def test_a_mapped_ipv4_address_is_judged_as_the_address(address: ipaddress.IPv4Address) -> None:
    mapped = ipaddress.IPv6Address(f"::ffff:{address}")
    assert internal_host_kind(str(mapped)) == internal_host_kind(str(address))


@given(st.ip_addresses(v=4, network="10.0.0.0/8") | st.ip_addresses(v=6, network="fc00::/7"))
def test_every_private_address_is_refused(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert internal_host_kind(str(address)) == "a private address"


# ------------------------------------------------------------------------------ SFTP_ALLOWED_HOSTS
def test_the_allow_list_makes_exceptions() -> None:
    allowed = HostAllowList.parse(" sftp.internal, 10.20.0.0/16 ,,[fd00::1], LOCALHOST.")
    assert allowed.names == frozenset({"sftp.internal", "localhost"})
    assert ipaddress.ip_network("fd00::1/128") in allowed.networks
    assert sftp_host_refusal("10.20.3.4", allowed) is None
    assert sftp_host_refusal("::ffff:10.20.3.4", allowed) is None
    assert sftp_host_refusal("SFTP.internal.", allowed) is None
    assert sftp_host_refusal("fd00::1", allowed) is None
    assert sftp_host_refusal("localhost", allowed) is None
    assert sftp_host_refusal("sftp.example.com", allowed) is None, "public hosts need no entry"
    refusal = sftp_host_refusal("10.21.0.1", allowed)
    assert refusal is not None and "private address" in refusal and "SFTP_ALLOWED_HOSTS" in refusal
    assert sftp_host_refusal("other.internal", allowed) is not None


def test_an_empty_allow_list_allows_no_exception() -> None:
    assert HostAllowList.parse("") == HostAllowList()
    assert sftp_host_refusal("127.0.0.1", HostAllowList()) is not None


@pytest.mark.parametrize(
    "entry",
    ["10.0.0.0/33", "sftp.example.com:22", "[sftp.internal]", "0x7f000001", "a b", "[10.0.0.0/8", "[fd00::/16]"],
)
def test_a_malformed_entry_is_refused(entry: str) -> None:
    with pytest.raises(ValueError, match="neither a host name nor an IP address"):
        HostAllowList.parse(f"sftp.internal,{entry}")


def test_the_setting() -> None:
    assert Settings().sftp_host_allow_list == HostAllowList()
    settings = Settings(sftp_allowed_hosts="sftp.internal,10.20.0.0/16")
    assert settings.sftp_host_allow_list.allows("10.20.0.1")
    with pytest.raises(ValueError, match="sftp_allowed_hosts"):
        Settings(sftp_allowed_hosts="10.0.0.0/33")
