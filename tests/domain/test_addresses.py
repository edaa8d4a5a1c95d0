"""Subnets are canonical; bad ones are refused with a message that names the fix."""

from __future__ import annotations

import pytest

from pbxfw.domain.addresses import parse_address, parse_subnet, parse_subnet_with_note
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
