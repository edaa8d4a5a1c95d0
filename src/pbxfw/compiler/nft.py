"""Configuration → nftables ruleset text for the one table pbxfw owns.

The compiler is pure: no subprocess, no clock, no file. The same configuration
and bans always give the same bytes, so a golden file is a reviewable diff and
``pbxfw compile`` shows exactly what ``pbxfw apply`` would load.

Shape (docs/nftables.md has the full picture)::

    table inet pbxfw
        sets   never_block_v4/v6                 never-block networks + ips_whitelist
               ban_<jail>_v4/v6                  banned addresses: hash, flags timeout
               ban_<jail>_net_v4/v6              banned subnets: flags interval, timeout
               banned_v4/v6, banned_net_v4/v6    guards: every banned address / subnet
               allow_<service>_v4/v6             flat longest-prefix result (firewall on)
               sip_rate_v4/v6                    per-source meter (sip_rate_limit > 0)
        chain input  (hook input, priority filter - 10, policy accept)
            1. (firewall_enabled) flow cache: ct mark bits = the flow tag: accept
               (with sip_rate_limit > 0 after iif lo accept and the rate limit)
            2. iif lo accept
            3. SIP signalling → jump sip_rate    (sip_rate_limit > 0)
            4. ICMPv6 neighbour discovery accept
            5. jump bans                         (ips_enabled)
            6. ct state established,related accept
            7. (firewall_enabled) essential ICMP/DHCP accept,
               port → service chain (vmap) → goto flow_allowed (marks the
               flow with the tag, accepts), echo-request → icmp chain,
               final drop: default deny for everything else

The flow tag starts as a digest of the policy; the kernel adapter gives each
load and each ban batch a fresh tag (``pbxfw.kernel``), so a cached flow is
one decided under the current policy *and* the current bans.

No text the administrator typed reaches the ruleset: network names and
descriptions are left out entirely (the flattened sets merge many networks
per interval anyway), and service keys are ``[a-z][a-z0-9_]*`` identifiers.
So no name can break out of a string or a comment.
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from pbxfw.domain.addresses import IPNetwork, address_text
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import ALL_SERVICES, PolicyIndex
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.domain.networks import Verdict
from pbxfw.domain.services import Service
from pbxfw.domain.settings import MAX_BAN_SECONDS

__all__ = [
    "CHAIN_PRIORITY",
    "FLOW_CACHE_COMMENT",
    "FLOW_CHAIN",
    "FLOW_MARK_COMMENT",
    "FLOW_MARK_MASK",
    "TABLE",
    "TABLE_FAMILY",
    "BanElement",
    "SetElements",
    "allow_intervals",
    "allow_set_name",
    "as_guard_plans",
    "ban_set_name",
    "compile_ban_elements",
    "compile_guard_elements",
    "compile_ruleset",
    "flow_cache_rule",
    "flow_mark",
    "flow_mark_rule",
    "guard_set_name",
    "is_host",
    "merge_intervals",
    "never_block_intervals",
    "plan_elements",
    "set_commands",
]

TABLE_FAMILY = "inet"
TABLE = "pbxfw"
#: Conntrack runs at -200 and mangle at -150, so ``ct state`` is known here.
#: Distribution firewalls (firewalld, ufw, iptables-nft, Docker) sit at
#: ``filter`` (0); running just before them makes our order relative to them
#: deterministic, and bans/rate limits cut a flood before other tables spend
#: time on it. Our accept never overrides another table's drop (each base
#: chain decides independently); our drop is final.
CHAIN_PRIORITY = "filter - 10"

_BITS = {4: 32, 6: 128}
_FAMILY = {4: "ip", 6: "ip6"}
_ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
#: The bits of ``ct mark`` pbxfw uses for its flow cache: a flow the allow
#: sets accepted carries the flow tag there, and its next packets are
#: accepted on that alone, before any other check, while the tag stays the
#: same. A one-way UDP flow (a SIP flood, one-way RTP) never becomes
#: ``established``, so without this every packet walked the ban guards, the
#: port map and a set of thousands of intervals. The tag changes with every
#: load and every ban batch (``pbxfw.kernel``), so a banned source's flows
#: are decided again at their next packet. The low 16 bits stay free for
#: other users of ``ct mark`` (policy routing with CONNMARK).
FLOW_MARK_MASK = 0xFFFF0000
#: The chain every allow verdict ends in: it marks the flow with the tag.
FLOW_CHAIN = "flow_allowed"
#: The comments that let the kernel adapter find the two rules holding the
#: tag (the cache check in ``input``, the marking rule in FLOW_CHAIN).
FLOW_CACHE_COMMENT = "a flow allowed under this policy and these bans"
FLOW_MARK_COMMENT = "remember the allow in the flow cache"
#: Kernel-side bound on the per-source rate meter; a full meter stops adding
#: new sources (they are then not limited), it never drops legitimate traffic.
_RATE_METER_SIZE = 65536
#: How long a source stays in the rate meter after its last SIP packet.
_RATE_METER_TIMEOUT = "1m"

_ND_TYPES = (
    "nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect"
)
# RFC 4890: ICMPv6 errors and MLD must pass for IPv6 to keep working; the
# ICMPv4 errors keep path-MTU discovery and error reporting intact.
_ICMPV6_ESSENTIAL = (
    "destination-unreachable, packet-too-big, time-exceeded, parameter-problem, "
    "mld-listener-query, mld-listener-report, mld-listener-done, mld2-listener-report"
)
_ICMPV4_ESSENTIAL = "destination-unreachable, time-exceeded, parameter-problem"

_Proto = Literal["tcp", "udp", "icmp"]


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


def ban_set_name(jail: str, version: int, subnets: bool = False) -> str:
    """``ban_asterisk_v4``: the set of ``jail``'s banned addresses of one
    family; ``ban_asterisk_net_v4`` (``subnets``) its banned subnets."""
    if jail not in JAIL_SCOPES:
        raise ValueError(f"unknown jail {jail!r}; known: {', '.join(sorted(JAIL_SCOPES))}")
    return f"ban_{jail}{'_net' if subnets else ''}_v{version}"


def guard_set_name(version: int, subnets: bool = False) -> str:
    """``banned_v4``: every banned address of every jail; ``banned_net_v4``
    (``subnets``): every banned subnet. The jump to the ban checks."""
    return f"banned{'_net' if subnets else ''}_v{version}"


def is_host(subnet: IPNetwork) -> bool:
    """One address (/32, /128): it goes to the hash sets, subnets to the
    interval sets. nft 1.0.6 reads an interval set's elements back before
    changing any set, while a hash set is changed blind, so the common case
    (single addresses) stays cheap however many bans there are."""
    return subnet.prefixlen == subnet.max_prefixlen


def allow_set_name(service: str, version: int) -> str:
    """``allow_sip_v6``: the addresses that may reach ``service``."""
    return f"allow_{service}_v{version}"


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


def never_block_intervals(config: Configuration, version: int) -> list[tuple[int, int]]:
    """Never-block networks plus ``ips_whitelist`` of one family, merged.

    Any never-block network containing an address exempts it (not only the
    most specific one), as in ``decision.is_whitelisted``.
    """
    subnets: list[IPNetwork] = [n.subnet for n in config.networks if n.never_block]
    subnets += [ipaddress.ip_network(w) for w in config.settings.ips_whitelist]
    return merge_intervals(_span(s) for s in subnets if s.version == version)


def _interval_text(first: int, last: int, version: int) -> str:
    """``10.0.0.0/8`` when the interval is one CIDR block, else ``a-b``."""
    size = last - first + 1
    if size & (size - 1) == 0 and first % size == 0:
        prefix = _BITS[version] - (size.bit_length() - 1)
        if prefix == _BITS[version]:
            return address_text(first, version)
        return f"{address_text(first, version)}/{prefix}"
    return f"{address_text(first, version)}-{address_text(last, version)}"


def _span(subnet: IPNetwork) -> tuple[int, int]:
    """First and last address as integers (cheaper than ``broadcast_address``)."""
    first = int(subnet.network_address)
    return first, first + (1 << (subnet.max_prefixlen - subnet.prefixlen)) - 1


def _elements(items: Sequence[str], indent: str) -> list[str]:
    """An ``elements = { ... }`` block, a few items a line, or nothing."""
    if not items:
        return []
    per_line = 4
    lines = [f"{indent}elements = {{"]
    for i in range(0, len(items), per_line):
        chunk = items[i : i + per_line]
        last_chunk = i + per_line >= len(items)
        lines.append(f"{indent}\t" + ", ".join(chunk) + ("" if last_chunk else ","))
    lines.append(f"{indent}}}")
    return lines


def _ban_items(spans: list[tuple[int, int, int | None]], version: int) -> list[str]:
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
    return [
        _interval_text(first, last, version) + _timeout_text(ttl) for first, last, ttl in folded
    ]


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


def _host_items(hosts: Iterable[tuple[int, int | None]], version: int) -> list[str]:
    """The elements of one hash ban set: each address once, sorted, with the
    longest of its lifetimes (``None``: no end)."""
    longest: dict[int, int | None] = {}
    for value, ttl in hosts:
        longest[value] = _longer(longest[value], ttl) if value in longest else ttl
    return [
        address_text(value, version) + _timeout_text(ttl) for value, ttl in sorted(longest.items())
    ]


_Spans = list[tuple[int, int, int | None]]


def _group_bans(
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
    for ban in bans:
        ban_set_name(ban.jail, 4)  # raises ValueError for an unknown jail


def _port_items(pieces: Iterable[tuple[str, int, int]]) -> str:
    return ", ".join(
        f"{proto} . {first}" if first == last else f"{proto} . {first}-{last}"
        for proto, first, last in sorted(pieces, key=lambda p: (p[1], p[0]))
    )


def _service_pieces(services: Sequence[Service]) -> list[tuple[str, int, int, tuple[str, ...]]]:
    """Disjoint (protocol, first, last, services covering it) port pieces.

    Two services may share a port (a custom service on a built-in port):
    that piece is open to the union of both services' networks.
    """
    result: list[tuple[str, int, int, tuple[str, ...]]] = []
    for proto in ("tcp", "udp"):
        ranges = [
            (r.first, r.last, s.key) for s in services for r in s.ports if r.protocol == proto
        ]
        bounds = sorted({b for first, last, _ in ranges for b in (first, last + 1)})
        for lo, hi in itertools.pairwise(bounds):
            owners = tuple(
                dict.fromkeys(key for first, last, key in ranges if first <= lo and hi - 1 <= last)
            )
            if not owners:
                continue
            if (
                result
                and result[-1][0] == proto
                and result[-1][3] == owners
                and result[-1][2] == lo - 1
            ):
                result[-1] = (proto, result[-1][1], hi - 1, owners)
            else:
                result.append((proto, lo, hi - 1, owners))
    return result


def compile_ruleset(config: Configuration, bans: Sequence[BanElement] = ()) -> str:
    """The whole ``table inet pbxfw`` as nft text, ending in a newline.

    Contract:
    * deterministic: the same ``config`` and ``bans`` (in any order) give the
      same text;
    * only ``table inet pbxfw`` is declared; nothing else is touched;
    * ban sets for every jail of ``JAIL_SCOPES`` and both families are always
      declared (the IPS adds elements incrementally) and hold ``bans``; they
      are consulted only when ``ips_enabled``;
    * with ``firewall_enabled`` false no network filtering happens: only
      bans and the SIP rate limit can drop;
    * raises ValueError for a ban of an unknown jail.

    Load it with ``NftBackend.apply``, which replaces the table atomically.
    """
    host_groups, net_groups = _group_bans(bans)
    settings = config.settings
    services = config.services()
    index = PolicyIndex(config.networks)
    jails = sorted(JAIL_SCOPES)
    rate = settings.sip_rate_limit
    out: list[str] = [
        f"table {TABLE_FAMILY} {TABLE} {{",
        '\tcomment "managed by pbxfw; edits are overwritten"',
    ]

    def declare(
        name: str, version: int, flags: str, items: Sequence[str], extra: Sequence[str] = ()
    ) -> None:
        out.append(f"\tset {name} {{")
        out.append(f"\t\ttype {_ADDR_TYPE[version]}")
        out.extend(f"\t\t{line}" for line in extra)
        out.append(f"\t\tflags {flags}")
        out.extend(_elements(items, "\t\t"))
        out.append("\t}")

    for v in (4, 6):
        declare(
            f"never_block_v{v}",
            v,
            "interval",
            [_interval_text(a, b, v) for a, b in never_block_intervals(config, v)],
        )
    for jail in jails:
        for v in (4, 6):
            declare(
                ban_set_name(jail, v),
                v,
                "timeout",
                _host_items(host_groups.get((jail, v), []), v),
            )
            declare(
                ban_set_name(jail, v, subnets=True),
                v,
                "interval, timeout",
                _ban_items(net_groups.get((jail, v), []), v),
            )
    for v in (4, 6):
        # Every banned address and every banned subnet of every jail, longest
        # lifetime kept: the lookups a packet from an address that is not
        # banned pays (one in a hash, one in a mostly empty interval set).
        hosts = [h for key, group in host_groups.items() if key[1] == v for h in group]
        declare(guard_set_name(v), v, "timeout", _host_items(hosts, v))
        spans = [span for key, group in net_groups.items() if key[1] == v for span in group]
        declare(guard_set_name(v, subnets=True), v, "interval, timeout", _ban_items(spans, v))
    # What the allow decisions depend on: its digest is the flow tag of the
    # compiled text (the kernel adapter puts a fresh tag in at every load;
    # the digest keeps the text deterministic).
    policy = hashlib.sha256()
    if settings.firewall_enabled:
        for service in services:
            for v in (4, 6):
                items = [_interval_text(a, b, v) for a, b in allow_intervals(index, service.key, v)]
                policy.update(f"{service.key} v{v}: {', '.join(items)}\n".encode())
                declare(allow_set_name(service.key, v), v, "interval", items)
    if rate > 0:
        for v in (4, 6):
            declare(
                f"sip_rate_v{v}",
                v,
                "dynamic, timeout",
                (),
                (f"size {_RATE_METER_SIZE}", f"timeout {_RATE_METER_TIMEOUT}"),
            )

    # --- input chain -------------------------------------------------------
    rules: list[str] = [f"type filter hook input priority {CHAIN_PRIORITY}; policy accept;"]
    loopback = 'iif "lo" accept comment "loopback"'
    sip_signalling = {
        ("udp", settings.sip_port, settings.sip_port),
        ("tcp", settings.sip_port, settings.sip_port),
        ("tcp", settings.tls_port, settings.tls_port),
    }
    if rate > 0:
        # Before the flow cache: a flood of one cached flow is limited too
        # (loopback first: the PBX talking to itself is never limited).
        rules.append(loopback)
        rules.append(
            f"meta l4proto . th dport {{ {_port_items(sip_signalling)} }} jump sip_rate "
            'comment "per-source SIP rate limit, established flows too"'
        )
        cache_index = len(rules)
    else:
        # The cache first of all: loopback flows are never marked (they are
        # accepted before any service chain), so the order changes no verdict.
        cache_index = len(rules)
        rules.append(loopback)
    rules.append(f'icmpv6 type {{ {_ND_TYPES} }} accept comment "IPv6 neighbour discovery"')
    if settings.ips_enabled:
        rules.append(
            f"ip saddr @{guard_set_name(4)} jump bans "
            'comment "bans come before established: a ban stops a running flow"'
        )
        rules.append(f"ip saddr @{guard_set_name(4, subnets=True)} jump bans")
        rules.append(f"ip6 saddr @{guard_set_name(6)} jump bans")
        rules.append(f"ip6 saddr @{guard_set_name(6, subnets=True)} jump bans")
    rules.append("ct state established,related accept")

    chains: list[tuple[str, list[str]]] = []
    if settings.firewall_enabled:
        essentials = [
            f"icmpv6 type {{ {_ICMPV6_ESSENTIAL} }} accept",
            f"icmp type {{ {_ICMPV4_ESSENTIAL} }} accept",
            "meta l4proto igmp accept",
            'udp sport 67 udp dport 68 accept comment "DHCPv4 client"',
            'ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 client"',
        ]
        pieces = _service_pieces(services)
        icmp_owners = tuple(s.key for s in services if s.icmp)
        owner_groups = {owners for *_, owners in pieces}
        if icmp_owners:
            owner_groups.add(icmp_owners)
        # One chain per service; a port shared by several services gets a
        # chain that tries each of their allow sets.
        combos = sorted(g for g in owner_groups if len(g) > 1)
        names = {g: f"shared_{i}" for i, g in enumerate(combos, 1)}
        for g in owner_groups:
            if len(g) == 1:
                names[g] = f"svc_{g[0]}"
        if pieces:
            vmap = ", ".join(
                f"{proto} . {first if first == last else f'{first}-{last}'} : jump {names[owners]}"
                for proto, first, last, owners in sorted(pieces, key=lambda p: (p[1], p[0]))
            )
            # Service traffic first: it is nearly all the traffic, and the
            # essentials below (ICMP errors, IGMP, DHCP) never match a port
            # of a service, so their order does not change any verdict.
            rules.append(f"meta l4proto . th dport vmap {{ {vmap} }}")
            policy.update(vmap.encode())
        if icmp_owners:
            policy.update(f"\nicmp: {', '.join(icmp_owners)}".encode())
        mark = flow_mark(policy.digest())
        # Before the bans guard: the tag stands for this policy and the bans
        # at the time of the tag.
        rules.insert(cache_index, flow_cache_rule(mark))
        rules += essentials
        if icmp_owners:
            rules.append(f"icmp type echo-request jump {names[icmp_owners]}")
            rules.append(f"icmpv6 type echo-request jump {names[icmp_owners]}")
        rules.append('counter drop comment "default deny: no network allows this"')
        order = {s.key: i for i, s in enumerate(services)}
        singles = sorted((g for g in owner_groups if len(g) == 1), key=lambda g: order[g[0]])
        for g in singles:
            chains.append((names[g], _allow_rules(g)))
        for g in combos:
            chains.append((names[g], [f'comment "services: {", ".join(g)}"', *_allow_rules(g)]))
        chains.append((FLOW_CHAIN, [flow_mark_rule(mark)]))

    out.append("")
    out.append("\tchain input {")
    out.extend(f"\t\t{r}" for r in rules)
    out.append("\t}")

    if settings.ips_enabled:
        out.append("")
        out.append("\tchain bans {")
        out.append("\t\tip saddr @never_block_v4 return")
        out.append("\t\tip6 saddr @never_block_v6 return")
        for jail in jails:
            scope = JAIL_SCOPES[jail]
            match = _scope_match(scope, services)
            for v in (4, 6):
                for subnets in (False, True):
                    for m in match:
                        out.append(
                            f"\t\t{_FAMILY[v]} saddr @{ban_set_name(jail, v, subnets)} "
                            f'{m}counter drop comment "jail {jail}"'
                        )
        out.append("\t}")
    if rate > 0:
        out.append("")
        out.append("\tchain sip_rate {")
        out.append("\t\tip saddr @never_block_v4 return")
        out.append("\t\tip6 saddr @never_block_v6 return")
        for v in (4, 6):
            out.append(
                f"\t\tmeta nfproto ipv{v} update @sip_rate_v{v} "
                f"{{ {_FAMILY[v]} saddr limit rate over {rate}/second "
                f"burst {_burst(rate)} packets }} counter drop"
            )
        out.append("\t}")
    for name, body in chains:
        out.append("")
        out.append(f"\tchain {name} {{")
        out.extend(f"\t\t{line}" for line in body)
        out.append("\t}")
    out.append("}")
    return "\n".join(out) + "\n"


def _burst(rate: int) -> int:
    """Packets a source may send at once above the rate: a tenth of a second's
    worth (at least 5), enough for a REGISTER/INVITE exchange, small enough
    that a flood is cut to about ``rate`` packets per second."""
    return max(5, rate // 10)


def _allow_rules(owners: tuple[str, ...]) -> list[str]:
    """Allowed when any of ``owners`` allows the source (FLOW_CHAIN marks
    the flow and accepts); else fall through to the input chain's final drop."""
    return [
        f"{_FAMILY[v]} saddr @{allow_set_name(key, v)} goto {FLOW_CHAIN}"
        for key in owners
        for v in (4, 6)
    ]


def flow_cache_rule(tag: int) -> str:
    """The input chain's flow-cache rule for ``tag`` (bits of FLOW_MARK_MASK)."""
    return (
        f'ct mark and {FLOW_MARK_MASK:#010x} == {tag:#010x} accept comment "{FLOW_CACHE_COMMENT}"'
    )


def flow_mark_rule(tag: int) -> str:
    """FLOW_CHAIN's rule: put ``tag`` in the flow's ``ct mark`` (its other
    bits kept) and accept."""
    keep = ~FLOW_MARK_MASK & 0xFFFFFFFF
    return (
        f'ct mark set ct mark and {keep:#010x} or {tag:#010x} accept comment "{FLOW_MARK_COMMENT}"'
    )


def flow_mark(digest: bytes) -> int:
    """The ``ct mark`` bits (inside FLOW_MARK_MASK) a digest stands for,
    never 0 (0 is every flow nobody marked)."""
    return (int.from_bytes(digest[:2], "big") or 1) << 16


def _scope_match(scope: frozenset[str], services: Sequence[Service]) -> list[str]:
    """What a jail's ban covers: every packet for ``*``, else its services' ports."""
    if ALL_SERVICES in scope:
        return [""]
    covered = [s for s in services if s.key in scope]
    pieces = {(r.protocol, r.first, r.last) for s in covered for r in s.ports}
    match = []
    if pieces:
        match.append(f"meta l4proto . th dport {{ {_port_items(pieces)} }} ")
    if any(s.icmp for s in covered):
        match.append("icmp type echo-request ")
        match.append("icmpv6 type echo-request ")
    return match


@dataclass(frozen=True, slots=True)
class SetElements:
    """The elements one batch changes in one ban or guard set: sorted
    ``(first, last, ttl)`` spans as integers, each once, of duplicates the
    longest lifetime (``ttl`` in seconds, ``None``: no end)."""

    set_name: str
    version: int
    spans: list[tuple[int, int, int | None]]

    @property
    def hosts(self) -> bool:
        """Single addresses only (a hash set)."""
        return all(first == last for first, last, _ in self.spans)


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
    sets: dict[str, tuple[int, dict[tuple[int, int], int | None]]] = {}
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
        host_bits = bits - subnet.prefixlen
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
            entry = sets[name] = (version, {})
        longest = entry[1]
        first = int(subnet.network_address)
        key = (first, first + (1 << host_bits) - 1)
        longest[key] = _longer(longest[key], ttl) if key in longest else ttl
    return [
        SetElements(name, version, [(a, b, longest[(a, b)]) for a, b in sorted(longest)])
        for name, (version, longest) in sorted(sets.items())
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
            merged.append(SetElements(name, group[0].version, group[0].spans))
            continue
        longest: dict[tuple[int, int], int | None] = {}
        for plan in group:
            for first, last, ttl in plan.spans:
                key = (first, last)
                longest[key] = _longer(longest[key], ttl) if key in longest else ttl
        spans = [(a, b, longest[(a, b)]) for a, b in sorted(longest)]
        merged.append(SetElements(name, group[0].version, spans))
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
        (address_text(a, v) if a == b else _interval_text(a, b, v), ttl) for a, b, ttl in plan.spans
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
