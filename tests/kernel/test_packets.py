"""Real packets: the kernel does exactly what ``pbxfw check`` says.

A PBX namespace with listeners on every service port, an office namespace
(inside the local, never-block network) and an Internet namespace, each with
several source addresses, IPv4 and IPv6. See ``configs.lab_config`` for the
nested networks (a narrow block inside a broad allow and a narrow allow
inside a broad block, in both families).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import itertools
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from pbxfw.compiler import BanElement, compile_ruleset
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import check
from pbxfw.kernel import NftBackend

from .configs import lab_config, network
from .lab import Lab, Listener, Probe, require_kernel

pytestmark = pytest.mark.kernel

PBX_OFFICE = ("10.77.1.1", "fd77:1::1")
PBX_INET = ("10.77.2.1", "fd77:2::1")
OFFICE_SOURCES = ("10.77.1.10", "10.77.1.130", "fd77:1::10", "fd77:1::105")
INET_SOURCES = (
    "203.0.113.9",  # Provider
    "198.51.100.20",  # only the Internet network
    "198.51.100.130",  # the /25 that blocks everything
    "198.51.100.200",  # the /28 inside it that allows ssh+web
    "2001:db8:1::9",  # only Internet IPv6
    "2001:db8:bad::5",  # Bad v6 (blocks everything)
    "2001:db8:bad::7",  # Admin v6 inside it (ssh+icmp)
)
#: A port no service covers: default deny when the firewall is on.
OTHER_PORT = 9999


@dataclass
class Topology:
    lab: Lab
    pbx: str
    office: str
    inet: str
    listener: Listener
    backend: NftBackend


def _service_ports(config: Configuration) -> list[tuple[str, str, int]]:
    """(service, protocol, port) to probe: both ends of every range."""
    out = []
    for service in config.services():
        if service.icmp:
            out.append((service.key, "icmp", 0))
        for r in service.ports:
            for port in sorted({r.first, r.last}):
                out.append((service.key, r.protocol, port))
    return out


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    require_kernel()
    lab = Lab("pkt")
    try:
        pbx, office, inet = lab.namespace("pbx"), lab.namespace("office"), lab.namespace("inet")
        lab.link(pbx, "o0", office, "p0")
        lab.link(pbx, "i0", inet, "p0")
        for cidr in ("10.77.1.1/24", "fd77:1::1/64"):
            lab.addr(pbx, "o0", cidr)
        for cidr in ("10.77.2.1/24", "fd77:2::1/64"):
            lab.addr(pbx, "i0", cidr)
        for src in OFFICE_SOURCES:
            lab.addr(office, "p0", f"{src}/{64 if ':' in src else 24}")
        lab.addr(inet, "p0", "10.77.2.2/24")
        lab.addr(inet, "p0", "fd77:2::2/64")
        for src in INET_SOURCES:
            lab.addr(inet, "p0", f"{src}/{128 if ':' in src else 32}")
        for dest in ("198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32"):
            lab.route(pbx, dest, "i0")
        ports = _service_ports(lab_config())
        listener = lab.listen(
            pbx,
            tcp=[p for _, proto, p in ports if proto == "tcp"] + [OTHER_PORT],
            udp=[p for _, proto, p in ports if proto == "udp"] + [OTHER_PORT],
        )
        yield Topology(lab, pbx, office, inet, listener, NftBackend(pbx))
    finally:
        lab.close()


def _matrix(topo: Topology, config: Configuration) -> None:
    """Probe every service port from every source; compare with ``check``."""
    expected: dict[tuple[str, Probe], str] = {}
    for ns, sources, targets in (
        (topo.office, OFFICE_SOURCES, PBX_OFFICE),
        (topo.inet, INET_SOURCES, PBX_INET),
    ):
        for src in sources:
            dst = targets[1] if ":" in src else targets[0]
            for key, proto, port in _service_ports(config):
                verdict = check(config, src, key).verdict
                expected[(ns, Probe(proto, src, dst, port))] = (
                    "open" if verdict == "allow" else "timeout"
                )
            other = "timeout" if config.settings.firewall_enabled else "open"
            for proto in ("tcp", "udp"):
                expected[(ns, Probe(proto, src, dst, OTHER_PORT))] = other
    got: dict[tuple[str, Probe], str] = {}
    for ns in (topo.office, topo.inet):
        probes = [p for (n, p) in expected if n == ns]
        got.update({(ns, p): r for p, r in topo.lab.probe(ns, probes).items()})
    wrong = {
        f"{p.kind} {p.src} -> {p.dst}:{p.port}": (got[k], want)
        for k, want in expected.items()
        for p in [k[1]]
        if got[k] != want
    }
    assert not wrong, f"(got, expected) differ for {len(wrong)} probes: {wrong}"
    # Both verdicts occur, so the matrix really tests filtering.
    if config.settings.firewall_enabled:
        assert {"open", "timeout"} <= set(got.values())


def test_every_service_from_every_source_as_check_says(topo: Topology) -> None:
    config = lab_config()
    topo.backend.apply(compile_ruleset(config))
    _matrix(topo, config)


def test_firewall_off_filters_nothing(topo: Topology) -> None:
    config = lab_config(firewall_enabled=False)
    topo.backend.apply(compile_ruleset(config))
    _matrix(topo, config)


def test_ban_stops_a_running_udp_flow_but_not_never_block(topo: Topology) -> None:
    config = lab_config()
    topo.backend.apply(compile_ruleset(config))
    attacker = Probe("udp", "203.0.113.9", PBX_INET[0], 5060, sport=40001)
    office = Probe("udp", "10.77.1.10", PBX_OFFICE[0], 5060, sport=40002)
    ssh = Probe("tcp", "198.51.100.200", PBX_INET[0], 22)

    def state() -> dict[Probe, str]:
        result = topo.lab.probe(topo.inet, [attacker, ssh])
        result.update(topo.lab.probe(topo.office, [office]))
        return result

    assert set(state().values()) == {"open"}  # flows established
    bans = [
        BanElement(ipaddress.ip_network("203.0.113.9/32"), "asterisk", 60),
        BanElement(ipaddress.ip_network("198.51.100.192/28"), "ssh", 60),
        BanElement(ipaddress.ip_network("10.77.1.0/24"), "manual", 60),  # never-block
    ]
    topo.backend.add(bans)
    topo.backend.commit()
    assert state() == {attacker: "timeout", ssh: "timeout", office: "open"}
    topo.backend.delete(bans)
    topo.backend.commit()
    assert set(state().values()) == {"open"}


def test_sip_flood_is_cut_to_the_rate_limit_but_never_block_is_not(topo: Topology) -> None:
    rate, seconds, pps = 50, 2.0, 800
    topo.backend.apply(compile_ruleset(lab_config(sip_rate_limit=rate)))
    topo.listener.reset()
    floods = [
        topo.lab.flood(topo.inet, "203.0.113.9", PBX_INET[0], 5060, pps, seconds),
        topo.lab.flood(topo.office, "10.77.1.10", PBX_OFFICE[0], 5060, pps, seconds),
    ]
    sent = [json.loads(f.communicate(timeout=seconds + 10)[0])["sent"] for f in floods]
    counts = topo.listener.counts()
    limited, exempt = counts.get("5060 203.0.113.9", 0), counts.get("5060 10.77.1.10", 0)
    assert sent[0] > 4 * rate * seconds
    # About `rate` per second plus the burst; never the flood.
    assert rate * seconds * 0.6 <= limited <= rate * seconds * 1.3 + 10, (limited, sent)
    assert exempt >= 0.95 * sent[1], (exempt, sent)


def test_a_running_one_way_flow_is_decided_again_when_the_policy_changes(
    topo: Topology,
) -> None:
    """The flow cache (``ct mark``) accepts the packets of a flow the allow
    sets accepted once; an apply that changes the policy must cut a one-way
    UDP flood that was allowed before (it never becomes ``established``)."""
    source = "198.51.100.20"  # only the Internet network: sip allowed
    allowed = lab_config()
    blocked = dataclasses.replace(
        allowed, networks=(*allowed.networks, network("Now blocked", "198.51.100.0/26", ""))
    )
    assert check(allowed, ipaddress.ip_address(source), "sip").verdict == "allow"
    assert check(blocked, ipaddress.ip_address(source), "sip").verdict == "block"
    topo.backend.apply(compile_ruleset(allowed))
    pps = 200
    counts = _flood_counts(
        topo,
        source,
        [
            lambda: topo.backend.apply(compile_ruleset(allowed)),  # same policy: goes on
            lambda: topo.backend.apply(compile_ruleset(blocked)),
        ],
        pps,
    )
    before, _, same, cut, _, after = counts
    assert before >= 0.8 * pps * 1.0, counts
    assert same - before >= 0.8 * pps * 0.4, counts
    assert after - cut <= 2, counts  # nothing more once the new policy is in


def _ban(backend: NftBackend, ban: BanElement) -> None:
    """One ban, buffered and committed: one kernel transaction."""
    backend.add([ban])
    backend.commit()


def _flood_counts(
    topo: Topology, source: str, steps: list[Callable[[], None]], pps: int = 200
) -> list[int]:
    """Delivered packets of a one-way UDP flood from ``source`` to 5060:
    the count after 1 s; after each step, the count 0.2 s later (packets
    already past the firewall) and 0.4 s later; then once the flood is over."""
    key = f"5060 {source}"
    topo.listener.reset()
    seconds = 1.5 + 0.6 * len(steps)
    flood = topo.lab.flood(topo.inet, source, PBX_INET[0], 5060, pps, seconds)
    counts = []
    time.sleep(1.0)
    counts.append(topo.listener.counts().get(key, 0))
    for step in steps:
        step()
        time.sleep(0.2)
        counts.append(topo.listener.counts().get(key, 0))
        time.sleep(0.2)
        counts.append(topo.listener.counts().get(key, 0))
    json.loads(flood.communicate(timeout=seconds + 10)[0])
    counts.append(topo.listener.counts().get(key, 0))
    return counts


def test_a_ban_cuts_a_cached_one_way_flow_at_once(topo: Topology) -> None:
    """A flood the flow cache accepts (never ``established``) is cut by a
    ban of its address (netlink path) or of its subnet (nft path): each
    ban batch gives the cache a new tag, so the flow meets the guard."""
    source, other = "198.51.100.20", "198.51.100.21"
    topo.backend.apply(compile_ruleset(lab_config()))
    for ban in (
        BanElement(ipaddress.ip_network(f"{source}/32"), "asterisk", 60),
        BanElement(ipaddress.ip_network("198.51.100.0/27"), "manual", 60),
    ):
        topo.backend.apply(compile_ruleset(lab_config()))
        counts = _flood_counts(topo, source, [functools.partial(_ban, topo.backend, ban)])
        assert counts[0] >= 150, counts  # allowed and cached before the ban
        assert counts[-1] - counts[1] <= 2, (ban, counts)  # cut until the flood ends
    # A ban of another address leaves the flow alone (it is decided again once).
    topo.backend.apply(compile_ruleset(lab_config()))
    ban = BanElement(ipaddress.ip_network(f"{other}/32"), "asterisk", 60)
    counts = _flood_counts(topo, source, [lambda: _ban(topo.backend, ban)])
    assert counts[2] - counts[1] >= 0.8 * 200 * 0.2, counts


def test_a_tag_used_again_finds_no_flow_that_carried_it(topo: Topology) -> None:
    """Tags are 16 bits, so one comes back sooner or later: before a tag is
    put in use the conntrack entries carrying it are deleted, so a banned
    flood that was cached under it stays cut."""
    tag_a, tag_b = 0x0A0A0000, 0x0B0B0000
    tags = itertools.cycle([tag_a, tag_b])  # A, then B, then A again
    backend = NftBackend(topo.pbx, flow_tags=lambda: next(tags))
    source = "198.51.100.20"
    backend.apply(compile_ruleset(lab_config()))  # tag A: the flood is cached under A
    ban = BanElement(ipaddress.ip_network(f"{source}/32"), "asterisk", 60)
    other = BanElement(ipaddress.ip_network("198.51.100.99/32"), "asterisk", 60)
    counts = _flood_counts(
        topo,
        source,
        [
            lambda: _ban(backend, ban),  # tag B: cut
            lambda: _ban(backend, other),  # tag A again
        ],
    )
    assert counts[0] >= 150, counts
    assert counts[-1] - counts[1] <= 2, counts
    listed = topo.lab.nft(topo.pbx, "list", "chain", "inet", "pbxfw", "input")
    assert f"ct mark {tag_a:#010x}/16 accept" in listed
