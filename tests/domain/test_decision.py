"""The decision of DESIGN §2: longest prefix wins, in both directions."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import ActiveBan, PolicyIndex, check
from pbxfw.domain.networks import Network, Verdict, permanent_networks
from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.domain.settings import Settings
from pbxfw.errors import ValidationError

ON = Settings(firewall_enabled=True)


def net(
    name: str, subnet: str, allow: str = "", *, local: bool = False, never_block: bool = False
) -> Network:
    allowed = set(allow.split(",")) - {""}
    services = {k: Verdict.ALLOW if k in allowed else Verdict.BLOCK for k in BUILTIN_KEYS}
    return Network(
        name, ipaddress.ip_network(subnet), services, local=local, never_block=never_block
    )


def config(*networks: Network, settings: Settings = ON) -> Configuration:
    return Configuration((*permanent_networks(), *networks), (), settings)


def test_narrow_block_inside_broad_allow_and_narrow_allow_inside_broad_block() -> None:
    c = config(
        net("office", "10.0.0.0/8", "ssh,sip"),
        net("guests", "10.5.0.0/16", "sip"),
        net("admin pc", "10.5.0.9/32", "ssh"),
    )
    assert check(c, "10.1.2.3", "ssh").verdict == "allow"
    decision = check(c, "10.5.1.1", "ssh")
    assert (decision.verdict, decision.network and decision.network.name) == ("block", "guests")
    decision = check(c, "10.5.0.9", "ssh")
    assert (decision.verdict, decision.network and decision.network.name) == ("allow", "admin pc")
    assert check(c, "10.5.0.9", "sip").verdict == "block"  # admin pc does not allow sip
    assert check(c, "192.0.2.1", "sip").verdict == "allow"  # Internet allows sip
    assert check(c, "192.0.2.1", "ssh").verdict == "block"


def test_ipv6_and_no_containing_network() -> None:
    c = Configuration((net("v6 lan", "2001:db8::/32", "ssh"),), (), ON)
    assert check(c, "2001:db8::5", "ssh").verdict == "allow"
    decision = check(c, "2001:db9::5", "ssh")
    assert decision.verdict == "block" and decision.network is None
    assert "no network" in decision.reason
    assert check(c, "192.0.2.1", "ssh").network is None


def test_loopback_then_bans_then_switch() -> None:
    c = config(
        net("office", "10.0.0.0/8", "sip"), net("trusted", "10.9.0.0/16", "sip", never_block=True)
    )
    ban = ActiveBan(ipaddress.ip_network("10.1.1.1/32"), "asterisk", frozenset({"sip", "iax"}))
    assert check(c, "127.0.0.1", "ssh").verdict == "allow"
    assert check(c, "::1", "ssh").verdict == "allow"
    banned = check(c, "10.1.1.1", "sip", bans=[ban])
    assert banned.verdict == "banned" and banned.ban == ban
    assert check(c, "10.1.1.1", "web", bans=[ban]).verdict == "block"  # outside the ban's scope
    never = ActiveBan(ipaddress.ip_network("10.9.0.5/32"), "asterisk", frozenset({"sip"}))
    assert check(c, "10.9.0.5", "sip", bans=[never]).verdict == "allow"  # never-block wins
    off = config(settings=Settings(firewall_enabled=False))
    assert check(off, "192.0.2.1", "ssh").verdict == "allow"
    assert check(off, "10.1.1.1", "sip", bans=[ban]).verdict == "banned"
    no_ips = config(settings=Settings(firewall_enabled=True, ips_enabled=False))
    assert check(no_ips, "10.1.1.1", "sip", bans=[ban]).verdict == "allow"


def test_unknown_service_and_bad_address_name_the_field() -> None:
    with pytest.raises(ValidationError) as caught:
        check(config(), "10.0.0.1", "telnet")
    assert caught.value.errors[0].field == "service"
    with pytest.raises(ValidationError) as caught:
        check(config(), "10.0.0.300", "sip")
    assert caught.value.errors[0].field == "address"


# -- property: the index agrees with a brute-force scan --------------------------

V4_BASE = int(ipaddress.ip_address("10.0.0.0"))
V6_BASE = int(ipaddress.ip_address("2001:db8::"))


@st.composite
def subnets(draw: st.DrawFn) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    # A small address space (a /20's worth) so that random networks nest.
    offset = draw(st.integers(0, 4095))
    if draw(st.booleans()):
        prefix = draw(st.integers(20, 32))
        return ipaddress.ip_network((V4_BASE + offset, prefix), strict=False)
    prefix = draw(st.integers(116, 128))
    return ipaddress.ip_network((V6_BASE + offset, prefix), strict=False)


@st.composite
def configurations(draw: st.DrawFn) -> Configuration:
    nets = draw(st.lists(subnets(), max_size=25, unique_by=str))
    networks = [
        Network(
            f"n{i}",
            subnet,
            {k: draw(st.sampled_from(list(Verdict))) for k in ("sip", "ssh")},
        )
        for i, subnet in enumerate(nets)
    ]
    if draw(st.booleans()):
        networks += list(permanent_networks())
    return Configuration(tuple(networks), (), ON)


def addresses() -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 8191).map(lambda o: str(ipaddress.IPv4Address(V4_BASE + o))),
        st.integers(0, 8191).map(lambda o: str(ipaddress.IPv6Address(V6_BASE + o))),
    )


def brute_force(c: Configuration, address: str, service: str) -> tuple[str, str | None]:
    ip = ipaddress.ip_address(address)
    containing = [n for n in c.networks if n.subnet.version == ip.version and ip in n.subnet]
    if not containing:
        return "block", None
    best = max(containing, key=lambda n: n.subnet.prefixlen)
    return best.verdict(service).value, best.name


@settings(max_examples=1000, deadline=None)
@given(
    configurations(),
    st.lists(addresses(), min_size=1, max_size=10),
    st.sampled_from(["sip", "ssh"]),
)
def test_check_matches_brute_force(c: Configuration, probes: list[str], service: str) -> None:
    index = PolicyIndex(c.networks)
    for address in probes:
        decision = check(c, address, service, index=index)
        name = decision.network.name if decision.network else None
        assert (decision.verdict, name) == brute_force(c, address, service)
