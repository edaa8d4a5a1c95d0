"""The fingerprint verdict on a packet's bytes (agent.fingerprint.judge, kernel.nfqueue.udp_payload)."""

from __future__ import annotations

import ipaddress
import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.agent.fingerprint import judge
from pbxfw.domain.fingerprints import DEFAULT_FINGERPRINTS, Matcher

MATCHER = Matcher(DEFAULT_FINGERPRINTS)
SIP = b"OPTIONS sip:100@x SIP/2.0\r\nUser-Agent: friendly-scanner\r\n\r\n"
PHONE = b"OPTIONS sip:100@x SIP/2.0\r\nUser-Agent: Yealink SIP-T46S\r\n\r\n"


def ipv4(payload: bytes, src: str = "198.51.100.7", frag: int = 0) -> bytes:
    udp = struct.pack("!HHHH", 40000, 5060, 8 + len(payload), 0) + payload
    head = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, frag, 64, 17, 0,
        ipaddress.ip_address(src).packed, ipaddress.ip_address("10.0.0.1").packed,
    )  # fmt: skip
    return head + udp


def ipv6(payload: bytes, src: str = "2001:db8::7") -> bytes:
    udp = struct.pack("!HHHH", 40000, 5060, 8 + len(payload), 0) + payload
    head = struct.pack("!IHBB", 6 << 28, len(udp), 17, 64)
    return (
        head + ipaddress.ip_address(src).packed + ipaddress.ip_address("2001:db8::1").packed + udp
    )


def never(_: object) -> bool:
    return False


def test_a_scanner_is_found_in_both_families() -> None:
    found = judge(ipv4(SIP), MATCHER, never)
    assert found is not None and str(found[0]) == "198.51.100.7"
    assert found[1].pattern == "friendly-scanner"
    found6 = judge(ipv6(SIP), MATCHER, never)
    assert found6 is not None and str(found6[0]) == "2001:db8::7"


def test_what_is_accepted() -> None:
    assert judge(ipv4(PHONE), MATCHER, never) is None
    assert judge(ipv4(SIP), MATCHER, lambda a: True) is None  # never-block
    assert judge(ipv4(SIP, frag=0x2000), MATCHER, never) is None  # a fragment
    assert judge(ipv4(SIP), Matcher([]), never) is None  # an empty list
    assert judge(b"\x45", MATCHER, never) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_never_raises(data: bytes) -> None:
    judge(data, MATCHER, never)
    judge(ipv4(data), MATCHER, never)
    judge(ipv6(data), MATCHER, never)
