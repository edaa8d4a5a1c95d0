"""Ban and allow elements: interval arithmetic, element text, ban batches.

Pure like the rest of the compiler. ``compile_ruleset`` declares the sets
with these elements; ``compile_ban_elements`` / ``compile_guard_elements``
(and the kernel adapter, through ``plan_elements`` and ``set_commands``)
change them in the running table between loads.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import compress, repeat
from operator import add, eq, ne
from typing import Literal, NamedTuple, cast

from pbxfw.compiler.names import TABLE, TABLE_FAMILY, ban_set_name, guard_set_name
from pbxfw.domain.addresses import IPNetwork, address_text
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import PolicyIndex
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.domain.network_model import Verdict
from pbxfw.domain.setting_rules import MAX_BAN_SECONDS

__all__ = [
    "BanElement",
    "SetElements",
    "allow_intervals",
    "allow_intervals_by_service",
    "as_guard_plans",
    "ban_items",
    "compile_ban_elements",
    "compile_guard_elements",
    "group_bans",
    "host_items",
    "interval_text",
    "interval_texts",
    "is_host",
    "merge_intervals",
    "never_block_intervals",
    "plan_elements",
    "set_commands",
]

_BITS = {4: 32, 6: 128}
_Get = Callable[[Mapping[str, Verdict], str], Verdict | None]


class BanElement(NamedTuple):
    """One banned subnet in one jail's set, with its remaining lifetime.

    ``expires_in_seconds`` becomes the element's kernel ``timeout``, so the ban
    lapses in the kernel even when pbxfw is not running; ``None`` is a ban
    without end. Elements with ``expires_in_seconds <= 0`` are already over
    and are left out. ``jail`` must be a key of ``JAIL_SCOPES``. (A named
    tuple: a bulk import makes 200,000 of them, four times faster than a
    frozen dataclass.)
    """

    subnet: IPNetwork
    jail: str
    expires_in_seconds: int | None = None


def is_host(subnet: IPNetwork) -> bool:
    """One address (/32, /128): it goes to the hash sets, subnets to the
    interval sets. nft 1.0.6 reads an interval set's elements back before
    changing any set, while a hash set is changed blind, so the common case
    (single addresses) stays cheap however many bans there are."""
    return subnet.prefixlen == subnet.max_prefixlen


def merge_intervals(intervals: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted, disjoint, with overlapping and adjacent intervals joined."""
    merged: list[tuple[int, int]] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1] + 1:
            if last > merged[-1][1]:
                merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return merged


def allow_intervals(index: PolicyIndex, service: str, version: int) -> list[tuple[int, int]]:
    """Addresses of one family whose most specific network allows ``service``.

    Read from ``PolicyIndex.segments`` — the same flattening ``check`` uses —
    so the kernel and ``pbxfw check`` cannot disagree. Merged and sorted.
    """
    allow = Verdict.ALLOW
    return merge_intervals(
        (s.first, s.last)
        for s in index.segments(version)
        # Network.verdict without the call (16 services × 10,000 networks
        # per compile); a missing verdict is block, and a Verdict is a str.
        if s.network.services.get(service) == allow
    )


def allow_intervals_by_service(
    index: PolicyIndex, services: Iterable[str], version: int
) -> dict[str, list[tuple[int, int]]]:
    """:func:`allow_intervals` of every service in ``services`` at once.

    The segments' verdicts are read, compared and joined service by service
    with ``map``, ``compress`` and ``zip`` (C loops, not Python ones: 16
    services × 10,000 networks, and 10^5 country segments, per compile).
    The segments are sorted and disjoint, so joining each allowed one to the
    previous when they touch gives what :func:`merge_intervals` gives.
    """
    allow = repeat(Verdict.ALLOW)
    one = repeat(1)
    # Per list of segments (by identity): verdicts, firsts, lasts, getter.
    columns: dict[int, tuple[list[Mapping[str, Verdict]], list[int], list[int], _Get]] = {}
    found: dict[str, list[tuple[int, int]]] = {}
    for key in services:
        # The services no country rule names read the networks' segments,
        # not the countries' (index.segments_for).
        segments = index.segments_for(version, key)
        if id(segments) not in columns:
            verdicts = [s.network.services for s in segments]
            # dict.get unbound keeps the loop in C; Network.services is a
            # dict but typed Mapping, so any other mapping takes Mapping.get.
            get = cast(_Get, dict.get if all(type(v) is dict for v in verdicts) else Mapping.get)
            firsts = [s.first for s in segments]
            lasts = [s.last for s in segments]
            columns[id(segments)] = (verdicts, firsts, lasts, get)
        verdicts, firsts, lasts, get = columns[id(segments)]
        # A missing verdict is block (None never equals ALLOW).
        allowed = list(map(eq, map(get, verdicts, repeat(key)), allow))
        starts = list(compress(firsts, allowed))
        ends = list(compress(lasts, allowed))
        # An allowed segment opens an interval unless it starts right after
        # the previous allowed one; the interval closes before the next opens.
        opens = [True, *map(ne, starts[1:], map(add, ends, one))]
        closes = [*opens[1:], True]
        found[key] = list(zip(compress(starts, opens), compress(ends, closes), strict=True))
    return found


def never_block_intervals(config: Configuration, version: int) -> list[tuple[int, int]]:
    """Never-block networks plus ``ips_whitelist`` of one family, merged.

    Any never-block network containing an address exempts it (not only the
    most specific one), as in ``decision.is_whitelisted``.
    """
    subnets: list[IPNetwork] = [n.subnet for n in config.networks if n.never_block]
    subnets += [ipaddress.ip_network(w) for w in config.settings.ips_whitelist]
    return merge_intervals(_span(s) for s in subnets if s.version == version)


def interval_text(first: int, last: int, version: int) -> str:
    """``10.0.0.0/8`` when the interval is one CIDR block, else ``a-b``."""
    size = last - first + 1
    if size & (size - 1) == 0 and first % size == 0:
        prefix = _BITS[version] - (size.bit_length() - 1)
        if prefix == _BITS[version]:
            return address_text(first, version)
        return f"{address_text(first, version)}/{prefix}"
    return f"{address_text(first, version)}-{address_text(last, version)}"


def interval_texts(intervals: Iterable[tuple[int, int]], version: int) -> list[str]:
    """:func:`interval_text` of many intervals (an allow set with every
    country holds 10^5): the same text, the addresses formatted by
    ``inet_ntop`` for both families, twice as fast as by hand for IPv4."""
    bits = _BITS[version]
    width = bits // 8
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    ntop = socket.inet_ntop
    out: list[str] = []
    append = out.append
    for first, last in intervals:
        size = last - first + 1
        text = ntop(family, first.to_bytes(width, "big"))
        if size & (size - 1) == 0 and first & (size - 1) == 0:
            append(text if size == 1 else f"{text}/{bits + 1 - size.bit_length()}")
        else:
            append(f"{text}-{ntop(family, last.to_bytes(width, 'big'))}")
    return out


def _span(subnet: IPNetwork) -> tuple[int, int]:
    """First and last address as integers (cheaper than ``broadcast_address``)."""
    first = int(subnet.network_address)
    return first, first + (1 << (subnet.max_prefixlen - subnet.prefixlen)) - 1


def ban_items(spans: list[tuple[int, int, int | None]], version: int) -> list[str]:
    """The elements of one ban set, overlaps resolved.

    An interval set refuses overlapping elements; CIDR blocks are nested or
    disjoint, so a covered block is folded into the broader one, which then
    lasts as long as the longest of them (a ban never ends early).
    """
    spans = sorted(spans, key=lambda s: (s[0], -s[1]))
    folded: list[tuple[int, int, int | None]] = []
    for first, last, ttl in spans:
        if folded and first <= folded[-1][1]:
            f0, l0, t0 = folded[-1]
            folded[-1] = (f0, l0, _longer(t0, ttl))
        else:
            folded.append((first, last, ttl))
    return [interval_text(first, last, version) + _timeout_text(ttl) for first, last, ttl in folded]


def _longer(a: int | None, b: int | None) -> int | None:
    """The longer of two lifetimes in seconds; ``None`` (no end) is longest:
    of two bans of one element the kernel keeps the one that ends last."""
    return None if a is None or b is None else max(a, b)


def _bounded(ttl: int | None) -> int | None:
    """A lifetime the kernel holds: at most MAX_BAN_SECONDS (10 years).

    Ban lengths are bounded where they are given; this is for elements made
    from bans stored before that (``1e30`` seconds), which nft would refuse,
    failing the whole transaction.
    """
    return MAX_BAN_SECONDS if ttl is not None and ttl > MAX_BAN_SECONDS else ttl


def _timeout_text(ttl: int | None) -> str:
    """`` timeout 600s``, or nothing for ``None``. nft 1.0.6 reads at most 8
    digits before ``s`` (``100000000s`` is "value too large"), so longer
    lifetimes are written in days: ``3650d``, ``1157d9h46m40s``."""
    if ttl is None:
        return ""
    if ttl < 10**8:
        return f" timeout {ttl}s"
    days, rest = divmod(ttl, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = zip((days, hours, minutes, seconds), "dhms", strict=True)
    return " timeout " + "".join(f"{n}{unit}" for n, unit in parts if n)


def host_items(hosts: Iterable[tuple[int, int | None]], version: int) -> list[str]:
    """The elements of one hash ban set: each address once, sorted, with the
    longest of its lifetimes (``None``: no end)."""
    longest: dict[int, int | None] = {}
    for value, ttl in hosts:
        longest[value] = _longer(longest[value], ttl) if value in longest else ttl
    return [
        address_text(value, version) + _timeout_text(ttl) for value, ttl in sorted(longest.items())
    ]


_Spans = list[tuple[int, int, int | None]]


def group_bans(
    bans: Iterable[BanElement],
) -> tuple[dict[tuple[str, int], list[tuple[int, int | None]]], dict[tuple[str, int], _Spans]]:
    """Bans by (jail, family): addresses (value, ttl) and subnets as integer
    spans; over ones left out, jails checked."""
    hosts: dict[tuple[str, int], list[tuple[int, int | None]]] = {}
    nets: dict[tuple[str, int], _Spans] = {}
    for ban in bans:
        if ban.jail not in JAIL_SCOPES:
            ban_set_name(ban.jail, 4)  # raises ValueError naming the jails
        ttl = _bounded(ban.expires_in_seconds)
        if ttl is not None and ttl <= 0:
            continue
        key = (ban.jail, ban.subnet.version)
        if is_host(ban.subnet):
            hosts.setdefault(key, []).append((int(ban.subnet.network_address), ttl))
        else:
            nets.setdefault(key, []).append((*_span(ban.subnet), ttl))
    return hosts, nets


def _check_jails(bans: Iterable[BanElement]) -> None:
    for jail in {ban.jail for ban in bans}:  # each jail once: 100,000 bans have a few
        ban_set_name(jail, 4)  # raises ValueError for an unknown jail


@dataclass(frozen=True, slots=True)
class SetElements:
    """The elements one batch changes in one ban or guard set: sorted
    ``(first, last, ttl)`` spans as integers, each once, of duplicates the
    longest lifetime (``ttl`` in seconds, ``None``: no end)."""

    set_name: str
    version: int
    spans: list[tuple[int, int, int | None]]
    #: single addresses only (a hash set; else subnets, an interval set):
    #: known from the set's name where the plan is made, never recomputed
    #: (100,000 spans; a batch asks several times)
    hosts: bool


def plan_elements(
    elements: Sequence[BanElement],
    *,
    guard: bool = False,
    action: Literal["add", "delete"] = "add",
) -> list[SetElements]:
    """Which set each element of a batch goes to (by jail, family, and
    address or subnet; ``guard``: the guard sets, ``jail`` unused), sets in
    name order. For ``add``, elements already over are left out. Raises
    ValueError for an unknown jail (not for the guard)."""
    if not guard:
        _check_jails(elements)
    sets: dict[str, tuple[int, dict[tuple[int, int], int | None], bool]] = {}
    # Hot loop (100,000 imported bans): set names and spans without helpers.
    names: dict[tuple[str, int, bool], str] = {}
    adding = action == "add"
    for ban in elements:
        ttl = ban.expires_in_seconds
        if ttl is not None and ttl > MAX_BAN_SECONDS:
            ttl = MAX_BAN_SECONDS  # _bounded, inlined: the hot loop
        if adding and ttl is not None and ttl <= 0:
            continue
        subnet = ban.subnet
        bits = subnet.max_prefixlen
        # the field behind the ``prefixlen`` property (a Python call per ban;
        # domain.addresses sets it the same way)
        host_bits = bits - subnet._prefixlen  # type: ignore[union-attr]
        version = 4 if bits == 32 else 6
        where = ("", version, host_bits > 0) if guard else (ban.jail, version, host_bits > 0)
        name = names.get(where)
        if name is None:
            name = names[where] = (
                guard_set_name(version, where[2])
                if guard
                else ban_set_name(ban.jail, version, where[2])
            )
        entry = sets.get(name)
        if entry is None:
            entry = sets[name] = (version, {}, not where[2])
        longest = entry[1]
        first = int(subnet.network_address)
        key = (first, first + (1 << host_bits) - 1)
        longest[key] = _longer(longest[key], ttl) if key in longest else ttl
    return [
        SetElements(name, version, [(a, b, longest[(a, b)]) for a, b in sorted(longest)], hosts)
        for name, (version, longest, hosts) in sorted(sets.items())
    ]


def as_guard_plans(plans: Sequence[SetElements]) -> list[SetElements]:
    """The guard sets' part of a batch whose jail sets' part is ``plans``
    (``plan_elements(bans, guard=True)`` without planning the bans again: a
    100,000-ban import is one jail, whose spans the guard takes as they are)."""
    groups: dict[str, list[SetElements]] = {}
    for plan in plans:
        if plan.spans:
            name = guard_set_name(plan.version, not plan.hosts)
            groups.setdefault(name, []).append(plan)
    merged: list[SetElements] = []
    for name, group in sorted(groups.items()):
        if len(group) == 1:
            merged.append(SetElements(name, group[0].version, group[0].spans, group[0].hosts))
            continue
        longest: dict[tuple[int, int], int | None] = {}
        for plan in group:
            for first, last, ttl in plan.spans:
                key = (first, last)
                longest[key] = _longer(longest[key], ttl) if key in longest else ttl
        spans = [(a, b, longest[(a, b)]) for a, b in sorted(longest)]
        merged.append(SetElements(name, group[0].version, spans, group[0].hosts))
    return merged


def set_commands(
    plan: SetElements, action: Literal["add", "delete"], refresh: bool = True
) -> list[str]:
    """Idempotent nft commands for one set's elements, one command per step
    whatever their number (nft 1.0.6 has no ``destroy``):

    * ``add`` with ``refresh``: add the bare elements (a no-op for those
      present), delete them, add them with their timeouts, so a repeated ban
      renews its lifetime; without ``refresh`` (the caller knows they are
      absent: a bulk import) only the last step;
    * ``delete``: add the bare elements, then delete them: no error when absent.

    Each element appears once in ``plan`` (a second delete of it would fail).
    """
    if not plan.spans:
        return []
    v = plan.version
    items = [
        (address_text(a, v) if a == b else interval_text(a, b, v), ttl) for a, b, ttl in plan.spans
    ]
    target = f"element {TABLE_FAMILY} {TABLE} {plan.set_name}"
    bare = f"{target} {{ {', '.join(text for text, _ in items)} }}"
    if action == "delete":
        return [f"add {bare}", f"delete {bare}"]
    timed = ", ".join(text + _timeout_text(ttl) for text, ttl in items)
    last_step = f"add {target} {{ {timed} }}"
    return [f"add {bare}", f"delete {bare}", last_step] if refresh else [last_step]


def compile_guard_elements(
    elements: Sequence[BanElement],
    *,
    action: Literal["add", "delete"] = "add",
    refresh: bool = True,
) -> str:
    """Like ``compile_ban_elements`` for the guard sets (``banned_v4``,
    ``banned_net_v4``, …).

    The guard holds every banned address or subnet whatever its jail, with
    the longest lifetime of its bans: the caller passes that lifetime
    (``jail`` is not used). A subnet inside a broader guard element is
    refused by the kernel ("interval overlaps"): reload the table then.
    """
    plans = plan_elements(elements, guard=True, action=action)
    return "".join(line + "\n" for p in plans for line in set_commands(p, action, refresh))


def compile_ban_elements(
    bans: Sequence[BanElement],
    *,
    action: Literal["add", "delete"] = "add",
    refresh: bool = True,
) -> str:
    """nft commands that add or remove ban elements in the running table.

    Idempotent within one transaction (``nft -f``); see ``set_commands``:
    a few commands per set, not per element, so 100,000 bans are one
    transaction of a few lines. An element overlapping a *different* element
    of a subnet set (a /24 inside a banned /16) is refused by the kernel: nft
    reports "interval overlaps". Raises ValueError for an unknown jail.
    Empty ``bans`` gives ``""``.
    """
    plans = plan_elements(bans, action=action)
    return "".join(line + "\n" for p in plans for line in set_commands(p, action, refresh))
