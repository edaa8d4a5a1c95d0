"""The detector never bans an address that cannot be a remote source (issue 13, item 11)."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from pbxfw.ips.detector import Detector, DetectorParams, never_banned
from pbxfw.ips.events import Failure

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

CASES = [
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("0.1.2.3", "this-network"),
    ("255.255.255.255", "broadcast"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("169.254.10.20", "link-local"),
    ("fe80::1", "link-local"),
    ("febf:ffff::1", "link-local"),
    ("127.0.0.1", "loopback"),
    ("127.255.0.9", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:169.254.1.1", "link-local"),
    ("::ffff:0.0.0.0", "unspecified"),
]


def flood(host: str, jail: str = "ssh") -> tuple[Detector, list[object]]:
    detector = Detector(DetectorParams(maxretry=3, findtime=600), lambda h: False)
    decisions: list[object] = []
    for n in range(10):
        failure = Failure(
            time=T0 + timedelta(seconds=n), jail=jail, host=ipaddress.ip_address(host), event="x"
        )
        decisions += detector.feed(failure)
    return detector, decisions


@pytest.mark.parametrize(("host", "why"), CASES)
@pytest.mark.parametrize("jail", ["ssh", "asterisk", "web"])
def test_never_banned_whatever_the_failures(host: str, why: str, jail: str) -> None:
    reason = never_banned(ipaddress.ip_address(host))
    assert reason is not None and reason.startswith(why)
    detector, decisions = flood(host, jail)
    assert decisions == []
    counters = detector.stats()["jails"][jail]
    assert counters["failures"] == 0
    assert counters["whitelisted"] == 10
    assert detector.stats()["tracked"] == 0


@pytest.mark.parametrize(
    "host",
    ["198.51.100.7", "2001:db8::1", "223.255.255.255", "1.0.0.0", "fec0::1", "::ffff:8.8.8.8"],
)
def test_ordinary_addresses_are_banned(host: str) -> None:
    assert never_banned(ipaddress.ip_address(host)) is None
    _, decisions = flood(host)
    assert len(decisions) == 1  # banned at the third failure; later ones come while banned
