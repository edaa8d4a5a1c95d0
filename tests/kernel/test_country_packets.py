"""Real packets with country rules (issue 17): the kernel does what ``check`` says.

"SIP only from Germany, Austria and Switzerland": DACH allows sip, every other
country is blocked for sip. From an Internet namespace: an address of an
allowed country reaches SIP, one of a blocked country does not, an explicit
network inside the blocked country still allows what it says; a service the
rules do not name keeps the ``Internet`` network's verdict. IPv4 and IPv6.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest

from pbxfw.compiler import compile_ruleset
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.countries import CountryRule
from pbxfw.domain.decision import check
from pbxfw.domain.geo import CountryTable
from pbxfw.domain.networks import Verdict, permanent_networks
from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.domain.settings import Settings
from pbxfw.kernel import NftBackend

from .configs import network
from .lab import Lab, Probe, require_kernel

pytestmark = pytest.mark.kernel

PBX = ("10.78.2.1", "fd78:2::1")
SOURCES = {
    "198.51.100.20": "DE: allowed country",
    "203.0.113.9": "CN: blocked country",
    "203.0.113.77": "CN, inside the explicit network Partner that allows sip",
    "192.0.2.5": "in no country",
    "2001:db8:1::9": "AT: allowed country",
    "2001:db8:2::9": "CN: blocked country",
}


def span(cidr: str, code: str) -> tuple[int, int, str]:
    n = ipaddress.ip_network(cidr)
    return int(n.network_address), int(n.broadcast_address), code


TABLE = CountryTable(
    [span("198.51.100.0/24", "DE"), span("203.0.113.0/24", "CN")],
    [span("2001:db8:1::/48", "AT"), span("2001:db8:2::/48", "CN")],
)


def country_config() -> Configuration:
    keys = BUILTIN_KEYS
    rules = (
        CountryRule("DACH", ("AT", "CH", "DE"), {"sip": Verdict.ALLOW}, id=1),
        CountryRule("Elsewhere", ("*",), {"sip": Verdict.BLOCK}, id=2),
    )
    nets = (*permanent_networks(keys), network("Partner", "203.0.113.64/26", "sip", keys))
    return Configuration(nets, (), Settings(firewall_enabled=True), rules, TABLE)


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Lab, str, str]]:
    require_kernel()
    lab = Lab("geo")
    try:
        pbx, inet = lab.namespace("pbx"), lab.namespace("inet")
        lab.link(pbx, "i0", inet, "p0")
        lab.addr(pbx, "i0", "10.78.2.1/24")
        lab.addr(pbx, "i0", "fd78:2::1/64")
        lab.addr(inet, "p0", "10.78.2.2/24")
        lab.addr(inet, "p0", "fd78:2::2/64")
        for src in SOURCES:
            lab.addr(inet, "p0", f"{src}/{128 if ':' in src else 32}")
        for dest in ("198.51.100.0/24", "203.0.113.0/24", "192.0.2.0/24", "2001:db8::/32"):
            lab.route(pbx, dest, "i0")
        lab.listen(pbx, tcp=[5060, 22], udp=[5060])
        yield lab, pbx, inet
    finally:
        lab.close()


def test_country_rules_in_the_kernel_as_check_says(lab: tuple[Lab, str, str]) -> None:
    the_lab, pbx, inet = lab
    config = country_config()
    NftBackend(pbx).apply(compile_ruleset(config))
    expected: dict[Probe, str] = {}
    for src in SOURCES:
        dst = PBX[1] if ":" in src else PBX[0]
        for kind, port, service in (("udp", 5060, "sip"), ("tcp", 5060, "sip"), ("tcp", 22, "ssh")):
            verdict = check(config, src, service).verdict
            expected[Probe(kind, src, dst, port)] = "open" if verdict == "allow" else "timeout"
    got = the_lab.probe(inet, list(expected))
    assert got == expected
    # What the rules mean, spelled out (check and the kernel agree above).
    sip = {src: got[Probe("udp", src, PBX[1] if ":" in src else PBX[0], 5060)] for src in SOURCES}
    assert sip == {
        "198.51.100.20": "open",
        "203.0.113.9": "timeout",
        "203.0.113.77": "open",
        "192.0.2.5": "open",  # no rule names 'unknown': the Internet network decides
        "2001:db8:1::9": "open",
        "2001:db8:2::9": "timeout",
    }
    ssh = {src: got[Probe("tcp", src, PBX[1] if ":" in src else PBX[0], 22)] for src in SOURCES}
    assert set(ssh.values()) == {"timeout"}  # the Internet blocks ssh; no rule names it
    reason = check(config, "203.0.113.9", "sip").reason
    assert reason.startswith("blocked: country CN, rule 'Elsewhere'")
