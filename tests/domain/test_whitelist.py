"""WhitelistIndex answers exactly as Whitelist.reason, only faster."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.domain.addresses import IPAddress, IPNetwork
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.whitelist import Whitelist

# Small corners of both families, so that random subnets and whitelist
# networks nest and overlap often; 127/8 and ::1 for loopback.
_V4_BASES = (0x0A000000, 0x7F000000, 0xC0000200)  # 10.0.0.0, 127.0.0.0, 192.0.2.0
_V6_BASE = int(ipaddress.IPv6Address("2001:db8::"))


@st.composite
def subnets(draw: st.DrawFn) -> IPNetwork:
    if draw(st.booleans()):
        prefix = draw(st.integers(0, 32))
        base = draw(st.sampled_from(_V4_BASES))
        value = base + draw(st.integers(0, 2**12)) if prefix else 0
        return ipaddress.IPv4Network((value, prefix), strict=False)
    prefix = draw(st.sampled_from([0, 1, 64, 116, 120, 124, 127, 128]))
    value = draw(st.sampled_from([_V6_BASE, 0])) + draw(st.integers(0, 2**10))
    return ipaddress.IPv6Network((value, prefix), strict=False)


def addresses() -> st.SearchStrategy[IPAddress]:
    return subnets().map(lambda n: n.network_address)


@st.composite
def whitelists(draw: st.DrawFn) -> Whitelist:
    whitelist = Whitelist(Configuration(), draw(st.lists(addresses(), max_size=4)))
    networks = draw(st.lists(subnets(), max_size=8))
    whitelist.networks = [(n, f"reason {i} ({n})") for i, n in enumerate(networks)]
    return whitelist


@settings(max_examples=300, deadline=None)
@given(whitelists(), st.lists(subnets(), min_size=1, max_size=30))
def test_index_reason_is_whitelist_reason(whitelist: Whitelist, tried: list[IPNetwork]) -> None:
    index = whitelist.index()
    for subnet in tried:
        assert index.reason(subnet) == whitelist.reason(subnet), subnet


@settings(max_examples=300, deadline=None)
@given(whitelists(), st.lists(addresses(), min_size=1, max_size=30))
def test_ipv4_host_reasons_are_whitelist_reasons(
    whitelist: Whitelist, tried: list[IPAddress]
) -> None:
    hosts = [a for a in tried if a.version == 4]
    expected = [whitelist.reason(ipaddress.IPv4Network(a)) for a in hosts]
    assert whitelist.index().ipv4_host_reasons([int(a) for a in hosts]) == expected
    assert whitelist.index().ipv4_host_reasons([-1]) == [None]  # "no address"


def test_messages() -> None:
    own = [ipaddress.ip_address("192.0.2.44"), ipaddress.ip_address("2001:db8::1")]
    whitelist = Whitelist(Configuration(), own)
    whitelist.networks = [
        (ipaddress.ip_network("10.1.0.0/16"), "office"),
        (ipaddress.ip_network("10.0.0.0/8"), "corporate"),
    ]
    index = whitelist.index()
    for text, why in (
        ("127.0.0.1/32", "loopback is never banned"),
        ("::1/128", "loopback is never banned"),
        ("192.0.2.0/24", "192.0.2.44 is this host's own address"),
        ("2001:db8::/64", "2001:db8::1 is this host's own address"),
        ("10.1.2.3/32", "office"),
        ("10.2.0.0/16", "corporate"),
        ("0.0.0.0/0", "192.0.2.44 is this host's own address"),
        ("198.51.100.7/32", None),
    ):
        assert (
            index.reason(ipaddress.ip_network(text))
            == why
            == whitelist.reason(ipaddress.ip_network(text))
        ), text
    assert index.ipv4_host_reasons([0x7F000001, 0x0A010203, 0x0A020304, 0xC000022C, 1]) == [
        "loopback is never banned",
        "office",
        "corporate",
        "192.0.2.44 is this host's own address",
        None,
    ]
