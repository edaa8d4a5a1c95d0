"""Subnets are canonical; bad ones are refused with a message that names the fix."""

from __future__ import annotations

import ipaddress
from typing import TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pbxfw.domain.addresses import (
    fast_ipv4_host,
    ipv4_host_network,
    ipv4_host_value,
    ipv4_network,
    ipv6_network,
    networks_from_text,
    parse_address,
    parse_subnet,
    parse_subnet_with_note,
)
from pbxfw.errors import ValidationError


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("192.168.1.0/24", "192.168.1.0/24"),
        ("192.168.1.77/24", "192.168.1.0/24"),
        ("10.0.0.1", "10.0.0.1/32"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("2001:DB8:0:0::1/32", "2001:db8::/32"),
        ("2001:0db8:0000::/48", "2001:db8::/48"),
        ("::1", "::1/128"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        ("::/0", "::/0"),
        ("::ffff:1.2.3.4", "1.2.3.4/32"),
    ],
)
def test_canonical(text: str, canonical: str) -> None:
    assert str(parse_subnet(text)) == canonical


def test_host_bits_give_a_note() -> None:
    network, note = parse_subnet_with_note("192.168.1.77/24")
    assert str(network) == "192.168.1.0/24"
    assert note == "192.168.1.77/24 has host bits set; stored as 192.168.1.0/24"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.256/24", "octet 256 is over 255"),
        ("10.0.0.0/33", "the prefix length of an IPv4 subnet is 0–32"),
        ("2001:db8::/129", "the prefix length of an IPv6 subnet is 0–128"),
        ("fe80::1%eth0/64", "zone index"),
        ("10.0.0/24", "four numbers"),
        ("10.0.0.0/x", "prefix length must be a number"),
        ("", "is empty"),
        ("banana", "not an IPv4 or IPv6 address"),
        ("1.2.3.4\x00", "not an IPv4 or IPv6 address"),
        ("1.2.3.4\x00/32", "not an IPv4 or IPv6 address"),
        ("\udcff.2.3.4", "not an IPv4 or IPv6 address"),
    ],
)
def test_refused_with_reason(text: str, expected: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_subnet(text)
    assert caught.value.errors[0].field == "subnet"
    assert expected in caught.value.errors[0].message


def test_mapped_address_is_ipv4() -> None:
    assert str(parse_address("::ffff:192.0.2.1")) == "192.0.2.1"
    assert str(parse_address("[2001:db8::1]")) == "2001:db8::1"


@given(st.integers(0, 2**32 - 1))
def test_ipv4_host_network_is_what_the_constructor_builds(value: int) -> None:
    made, built = ipv4_host_network(value), ipaddress.IPv4Network((value, 32))
    assert type(made) is type(built)
    assert vars(made).keys() == vars(built).keys()  # the attributes __init__ sets
    assert made == built and hash(made) == hash(built) and str(made) == str(built)
    assert made.hosts() == built.hosts() == [built.network_address]  # type: ignore[comparison-overlap]
    assert made.network_address == built.network_address and made.netmask == built.netmask
    assert made.prefixlen == 32 and made.broadcast_address == built.broadcast_address
    assert made.is_private == built.is_private and made.is_loopback == built.is_loopback
    assert list(made) == list(built) and made.supernet() == built.supernet()
    assert made.overlaps(built) and made.subnet_of(built)
    assert made.compare_networks(built) == 0


N = TypeVar("N", ipaddress.IPv4Network, ipaddress.IPv6Network)


def assert_same_network(made: N | None, built: N, list_hosts: bool) -> None:
    """``made`` behaves as the network ``ipaddress``'s constructor ``built``."""
    prefix = built.prefixlen
    assert made is not None and type(made) is type(built)
    assert vars(made).keys() == vars(built).keys()  # the attributes __init__ sets
    assert made == built and hash(made) == hash(built) and str(made) == str(built)
    assert made.network_address == built.network_address and made.netmask == built.netmask
    assert made.prefixlen == prefix and made.broadcast_address == built.broadcast_address
    assert made.hostmask == built.hostmask and made.num_addresses == built.num_addresses
    assert made.is_private == built.is_private and made.is_global == built.is_global
    if list_hosts:
        assert list(made.hosts()) == list(built.hosts()) and list(made) == list(built)
    assert prefix == 0 or made.supernet() == built.supernet()
    assert made.overlaps(built) and made.subnet_of(built) and made.compare_networks(built) == 0
    assert networks_from_text([str(built)]) == [built]


@given(st.integers(0, 2**32 - 1), st.integers(0, 32))
def test_ipv4_network_is_what_the_constructor_builds(value: int, prefix: int) -> None:
    value &= (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF  # host bits zeroed
    built = ipaddress.IPv4Network((value, prefix))
    assert_same_network(ipv4_network(value, prefix), built, list_hosts=prefix >= 24)
    if prefix < 32:  # a host bit set, or out of range: the constructor's way
        assert ipv4_network(value | 1, prefix) is None
    assert ipv4_network(value, 33) is None and ipv4_network(1 << 32, prefix) is None


@given(st.integers(0, 2**128 - 1), st.integers(0, 128))
def test_ipv6_network_is_what_the_constructor_builds(value: int, prefix: int) -> None:
    value &= ((1 << 128) - 1) << (128 - prefix) & ((1 << 128) - 1)  # host bits zeroed
    made, built = ipv6_network(value, prefix), ipaddress.IPv6Network((value, prefix))
    assert_same_network(made, built, list_hosts=prefix >= 120)
    assert made is not None
    assert made.network_address.scope_id is built.network_address.scope_id is None
    if prefix < 128:  # a host bit set, or out of range: the constructor's way
        assert ipv6_network(value | 1, prefix) is None
    assert ipv6_network(value, 129) is None and ipv6_network(1 << 128, prefix) is None


def _network_text(value_prefix: tuple[int, int]) -> str:
    value, prefix = value_prefix
    version = ipaddress.IPv4Network if value < 2**32 and prefix <= 32 else ipaddress.IPv6Network
    return str(version(value_prefix, strict=False))


@given(
    st.text(alphabet="0123456789./:abcdef x+-", max_size=24)
    | st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 32)).map(_network_text)
    | st.tuples(st.integers(0, 2**128 - 1), st.integers(0, 128)).map(_network_text)
)
def test_networks_from_text_is_ip_network(text: str) -> None:
    try:
        expected = ipaddress.ip_network(text)
    except ValueError:
        with pytest.raises(ValueError):
            networks_from_text([text])
        return
    (made,) = networks_from_text([text])
    assert made == expected and str(made) == str(expected) and type(made) is type(expected)
    assert vars(made).keys() == vars(expected).keys()


@given(st.text(alphabet="0123456789./ x", max_size=20) | st.ip_addresses(v=4).map(str))
def test_ipv4_host_value_accepts_only_canonical_dotted_quads(text: str) -> None:
    value = ipv4_host_value(text)
    if value is not None:
        assert str(ipaddress.IPv4Address(value)) == text
    elif text.count(".") == 3 and "/" not in text and " " not in text:
        with pytest.raises(ValueError):  # e.g. a leading zero or an octet over 255
            ipaddress.IPv4Address(text)
    fast = fast_ipv4_host(text)
    assert fast is None or fast == parse_subnet(text)


@given(st.lists(st.ip_addresses().map(str) | st.sampled_from(["10.0.0.0/8", "2001:db8::/32"])))
def test_networks_from_text_reads_stored_subnets(texts: list[str]) -> None:
    stored = [str(ipaddress.ip_network(t)) for t in texts]
    assert networks_from_text(stored) == [ipaddress.ip_network(t) for t in stored]
