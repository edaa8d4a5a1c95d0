"""Property: for any configuration, the compiled allow sets say what ``check`` says."""

from __future__ import annotations

import ipaddress
import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxfw.compiler import compile_ruleset
from pbxfw.compiler.elements import allow_intervals, allow_intervals_by_service
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import PolicyIndex, check
from pbxfw.domain.networks import Network, Verdict
from pbxfw.domain.settings import Settings

KEYS = ("sip", "ssh", "icmp")
_SET = re.compile(r"set (allow_\w+_v[46]) \{\n(.*?)\n\t\}", re.S)


def parse_sets(text: str) -> dict[str, list[tuple[int, int]]]:
    """Every allow set of the ruleset text as integer intervals."""
    sets: dict[str, list[tuple[int, int]]] = {}
    for name, body in _SET.findall(text):
        items: list[tuple[int, int]] = []
        match = re.search(r"elements = \{(.*?)\}", body, re.S)
        for item in match.group(1).replace("\n", " ").split(",") if match else []:
            item = item.strip()
            if "-" in item:
                a, b = item.split("-")
                items.append((int(ipaddress.ip_address(a)), int(ipaddress.ip_address(b))))
            else:
                net = ipaddress.ip_network(item)
                items.append((int(net.network_address), int(net.broadcast_address)))
        sets[name] = items
    return sets


def _networks(version: int) -> st.SearchStrategy[list[Network]]:
    bits = 32 if version == 4 else 128
    # Subnets drawn from a small corner of the address space so they nest.
    base = 0x0A000000 if version == 4 else 0x20010DB8 << 96

    @st.composite
    def one(draw: st.DrawFn) -> tuple[int, int, dict[str, Verdict]]:
        prefix = draw(st.integers(bits - 12, bits))
        offset = draw(st.integers(0, (1 << 12) - 1))
        verdicts = {k: draw(st.sampled_from(list(Verdict))) for k in KEYS}
        return prefix, offset, verdicts

    def build(raw: list[tuple[int, int, dict[str, Verdict]]]) -> list[Network]:
        seen: dict[object, Network] = {}
        for i, (prefix, offset, verdicts) in enumerate(raw):
            net = ipaddress.ip_network(((base + offset), prefix), strict=False)
            seen.setdefault(net, Network(f"n{i}", net, verdicts))
        return list(seen.values())

    return st.lists(one(), max_size=12).map(build)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    nets4=_networks(4),
    nets6=_networks(6),
    probes=st.lists(st.integers(0, (1 << 13) - 1), min_size=1, max_size=30),
    catch_all=st.booleans(),
)
def test_allow_sets_equal_check(
    nets4: list[Network], nets6: list[Network], probes: list[int], catch_all: bool
) -> None:
    networks = [*nets4, *nets6]
    if catch_all:
        everything = {k: Verdict.ALLOW if k == "sip" else Verdict.BLOCK for k in KEYS}
        networks += [
            Network("all4", ipaddress.ip_network("0.0.0.0/0"), everything),
            Network("all6", ipaddress.ip_network("::/0"), everything),
        ]
    config = Configuration(tuple(networks), (), Settings(firewall_enabled=True, ips_enabled=False))
    sets = parse_sets(compile_ruleset(config))
    index = PolicyIndex(config.networks)
    # Probe around every network edge and at random offsets.
    candidates: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for n in config.networks:
        for value in (int(n.subnet.network_address), int(n.subnet.broadcast_address)):
            for delta in (-1, 0, 1):
                if 0 <= value + delta < (1 << n.subnet.max_prefixlen):
                    candidates.add(
                        ipaddress.ip_address(value + delta)
                        if n.subnet.version == 4
                        else ipaddress.IPv6Address(value + delta)
                    )
    for p in probes:
        candidates.add(ipaddress.IPv4Address(0x0A000000 + p))
        candidates.add(ipaddress.IPv6Address((0x20010DB8 << 96) + p))
    for address in candidates:
        if address.is_loopback:
            continue  # decided by the interface (iif lo), before any set
        for key in KEYS:
            allowed = check(config, address, key, index=index).verdict == "allow"
            intervals = sets[f"allow_{key}_v{address.version}"]
            in_set = any(a <= int(address) <= b for a, b in intervals)
            assert in_set == allowed, (str(address), key)


def test_parse_sets_reads_ranges_and_prefixes() -> None:
    text = "set allow_x_v4 {\n\t\ttype ipv4_addr\n\t\telements = {\n\t\t\t10.0.0.0/8, 11.0.0.1-11.0.0.3\n\t\t}\n\t}"
    assert parse_sets(text) == {"allow_x_v4": [(0x0A000000, 0x0AFFFFFF), (0x0B000001, 0x0B000003)]}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets4=_networks(4), nets6=_networks(6))
def test_allow_intervals_by_service_equals_one_service_at_a_time(
    nets4: list[Network], nets6: list[Network]
) -> None:
    # compile_ruleset walks the segments once for every service; the result
    # must be what allow_intervals gives service by service.
    index = PolicyIndex([*nets4, *nets6])
    for version in (4, 6):
        found = allow_intervals_by_service(index, (*KEYS, "absent"), version)
        for key in (*KEYS, "absent"):
            assert found[key] == allow_intervals(index, key, version)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(nets4=_networks(4), nets6=_networks(6))
def test_a_given_index_compiles_the_same_text(nets4: list[Network], nets6: list[Network]) -> None:
    # apply builds one index for the lockout check and the compiler.
    config = Configuration((*nets4, *nets6), (), Settings(firewall_enabled=True, ips_enabled=False))
    index = PolicyIndex(config.networks)
    assert compile_ruleset(config, index=index) == compile_ruleset(config)
