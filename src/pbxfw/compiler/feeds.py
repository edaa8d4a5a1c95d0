"""Blocklist feeds in the ruleset (issue 17): their sets, rules and element changes.

Each feed has sets of its own, like a jail's bans: ``feed_<name>_v4/_v6``
(single addresses, a hash: the netlink element path) and
``feed_<name>_net_v4/_v6`` (CIDR blocks, ``flags interval``). The input
chain sends a source found in one of them to the ``feeds`` chain, after the
bans and before ``ct state established,related`` (so a listed source is cut
even inside a flow); there never-block networks and the whitelist return
first, then each feed drops what its scope covers (its services' ports, or
every packet for ``all``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from pbxfw.compiler.elements import SetElements, interval_text
from pbxfw.compiler.ports import scope_match
from pbxfw.domain.addresses import address_text
from pbxfw.domain.decision import ALL_SERVICES
from pbxfw.domain.feed_lists import Entry
from pbxfw.domain.feeds import ALL_SCOPE
from pbxfw.domain.services import Service

__all__ = [
    "FEEDS_CHAIN",
    "FeedSet",
    "all_scope_set_names",
    "feed_chain_rules",
    "feed_changes",
    "feed_input_rules",
    "feed_set_declarations",
    "feed_set_name",
]

#: The chain every listed source jumps to.
FEEDS_CHAIN = "feeds"
_FAMILY = {4: "ip", 6: "ip6"}
_ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
_BITS = {4: 32, 6: 128}


@dataclass(frozen=True, slots=True)
class FeedSet:
    """What the compiler needs of one feed: its name, scope and kept entries."""

    name: str
    scope: tuple[str, ...]
    entries: Sequence[Entry] = field(default_factory=tuple)


def feed_set_name(feed: str, version: int, subnets: bool = False) -> str:
    """``feed_<name>_v4``, ``feed_<name>_net_v6``…"""
    return f"feed_{feed}{'_net' if subnets else ''}_v{version}"


def all_scope_set_names(feeds: Iterable[FeedSet]) -> list[str]:
    """The sets of the feeds that drop every packet (scope ``all``), for an
    early drop before connection tracking (issue 18's raw-priority chain)."""
    return [
        feed_set_name(f.name, v, subnets)
        for f in feeds
        if ALL_SCOPE in f.scope
        for v in (4, 6)
        for subnets in (False, True)
    ]


def _split(entries: Iterable[Entry], version: int) -> tuple[list[int], list[tuple[int, int]]]:
    hosts: list[int] = []
    nets: list[tuple[int, int]] = []
    bits = _BITS[version]
    for v, first, prefix in entries:
        if v != version:
            continue
        if prefix == bits:
            hosts.append(first)
        else:
            nets.append((first, first | ((1 << (bits - prefix)) - 1)))
    return hosts, nets


def _declare(name: str, version: int, flags: str, items: Sequence[str]) -> list[str]:
    lines = [f"\tset {name} {{", f"\t\ttype {_ADDR_TYPE[version]}"]
    if flags:
        lines.append(f"\t\tflags {flags}")
    if items:
        lines.append("\t\telements = {")
        per_line = 8
        for i in range(0, len(items), per_line):
            last = i + per_line >= len(items)
            lines.append("\t\t\t" + ", ".join(items[i : i + per_line]) + ("" if last else ","))
        lines.append("\t\t}")
    lines.append("\t}")
    return lines


def feed_set_declarations(feeds: Sequence[FeedSet]) -> list[str]:
    """The ``set`` blocks of every feed, with their elements (a full load)."""
    out: list[str] = []
    for feed in feeds:
        for v in (4, 6):
            hosts, nets = _split(feed.entries, v)
            out += _declare(feed_set_name(feed.name, v), v, "", [address_text(h, v) for h in hosts])
            out += _declare(
                feed_set_name(feed.name, v, True),
                v,
                "interval",
                [interval_text(a, b, v) for a, b in nets],
            )
    return out


def feed_input_rules(feeds: Sequence[FeedSet]) -> list[str]:
    """The input chain's jumps: one lookup per feed set."""
    return [
        f"{_FAMILY[v]} saddr @{feed_set_name(f.name, v, subnets)} jump {FEEDS_CHAIN}"
        for f in feeds
        for v in (4, 6)
        for subnets in (False, True)
    ]


def feed_chain_rules(feeds: Sequence[FeedSet], services: Sequence[Service]) -> list[str]:
    """The ``feeds`` chain: never-block returns, then each feed's drops."""
    rules = ["ip saddr @never_block_v4 return", "ip6 saddr @never_block_v6 return"]
    for f in feeds:
        scope = frozenset({ALL_SERVICES} if ALL_SCOPE in f.scope else f.scope)
        for v in (4, 6):
            for subnets in (False, True):
                for m in scope_match(scope, services):
                    rules.append(
                        f"{_FAMILY[v]} saddr @{feed_set_name(f.name, v, subnets)} "
                        f'{m}counter drop comment "feed {f.name}"'
                    )
    return rules


def feed_changes(
    name: str, old: Iterable[Entry], new: Iterable[Entry]
) -> tuple[list[SetElements], list[SetElements]]:
    """The element changes from ``old`` to ``new`` (both kept lists of one
    feed): (additions, deletions) per set, only the entries that differ.
    Deletions go first when sent: a CIDR may be replaced by a broader one."""
    old_set, new_set = set(old), set(new)
    added, gone = sorted(new_set - old_set), sorted(old_set - new_set)
    adds: list[SetElements] = []
    dels: list[SetElements] = []
    for entries, out in ((added, adds), (gone, dels)):
        for v in (4, 6):
            hosts, nets = _split(entries, v)
            if hosts:
                out.append(SetElements(feed_set_name(name, v), v, [(h, h, None) for h in hosts]))
            if nets:
                out.append(
                    SetElements(feed_set_name(name, v, True), v, [(a, b, None) for a, b in nets])
                )
    return adds, dels
