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
from pbxfw.domain.feed_lists import FeedList
from pbxfw.domain.feeds import ALL_SCOPE
from pbxfw.domain.services import Service

__all__ = [
    "FEEDS_CHAIN",
    "FeedDelta",
    "FeedSet",
    "all_scope_sets",
    "feed_chain_rules",
    "feed_changes",
    "feed_input_rules",
    "feed_reason",
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
    entries: FeedList = field(default_factory=FeedList)


def feed_set_name(feed: str, version: int, subnets: bool = False) -> str:
    """``feed_<name>_v4``, ``feed_<name>_net_v6``…"""
    return f"feed_{feed}{'_net' if subnets else ''}_v{version}"


def feed_reason(feed: str) -> str:
    """``feed NAME``: what a feed's drop rules say in their comment, the
    ``reason``/``feed`` labels of the drop metrics (kernel.counters)."""
    return f"feed {feed}"


def all_scope_sets(feeds: Iterable[FeedSet]) -> list[tuple[str, str]]:
    """(set name, reason) of the sets of the feeds that drop every packet
    (scope ``all``), for an early drop before connection tracking (issue
    18's raw-priority chain, compiler.early ``EarlySet``). The reason is
    given here, where the set is named: a set's name does not say whose it
    is (``feed_spam_net_v4``: feed ``spam_net``'s addresses or feed
    ``spam``'s blocks)."""
    return [
        (feed_set_name(f.name, v, subnets), feed_reason(f.name))
        for f in feeds
        if ALL_SCOPE in f.scope
        for v in (4, 6)
        for subnets in (False, True)
    ]


def _nets(entries: FeedList, version: int) -> list[tuple[int, int]]:
    bits = _BITS[version]
    return [
        (first, first | ((1 << (bits - prefix)) - 1))
        for v, first, prefix in entries.nets
        if v == version
    ]


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
            hosts, nets = feed.entries.hosts[v], _nets(feed.entries, v)
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
                        f'{m}counter drop comment "{feed_reason(f.name)}"'
                    )
    return rules


@dataclass(frozen=True, slots=True)
class FeedDelta:
    """What a refresh changes in one feed's sets: addresses (integers, per
    family) added and deleted, and the CIDR blocks as set element plans."""

    name: str
    add_hosts: dict[int, list[int]]
    del_hosts: dict[int, list[int]]
    add_nets: list[SetElements]
    del_nets: list[SetElements]

    def count(self) -> int:
        hosts = sum(len(h) for h in (*self.add_hosts.values(), *self.del_hosts.values()))
        return hosts + sum(len(p.spans) for p in (*self.add_nets, *self.del_nets))


def feed_changes(name: str, old: FeedList, new: FeedList) -> FeedDelta:
    """The element changes from ``old`` to ``new`` (two kept lists of one
    feed): only the entries that differ. Deletions are sent first: a block
    may be replaced by a broader one."""
    add_hosts: dict[int, list[int]] = {}
    del_hosts: dict[int, list[int]] = {}
    for v in (4, 6):
        before, after = old.hosts[v], new.hosts[v]
        if before == after:
            add_hosts[v], del_hosts[v] = [], []
            continue
        if not before or not after:  # a first load, or a feed emptied
            add_hosts[v], del_hosts[v] = list(after), list(before)
            continue
        # Set differences in C: a Python loop over a million would cost seconds.
        had, has = set(before), set(after)
        add_hosts[v] = sorted(has - had)
        del_hosts[v] = sorted(had - has)
    had_nets, has_nets = set(old.nets), set(new.nets)
    add_nets: list[SetElements] = []
    del_nets: list[SetElements] = []
    for entries, out in (
        ([e for e in new.nets if e not in had_nets], add_nets),
        ([e for e in old.nets if e not in has_nets], del_nets),
    ):
        for v in (4, 6):
            spans = _nets(FeedList(nets=entries), v)
            if spans:
                out.append(
                    SetElements(
                        feed_set_name(name, v, True),
                        v,
                        [(a, b, None) for a, b in spans],
                        hosts=False,
                    )
                )
    return FeedDelta(name, add_hosts, del_hosts, add_nets, del_nets)
