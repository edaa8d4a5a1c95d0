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
        chain early, early_out  (hook prerouting/output, priority raw: before
            conntrack) dropped early, conntrack flood protection (compiler/early.py)

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
from collections.abc import Iterable, Sequence

from pbxfw.bulk import gc_paused
from pbxfw.compiler.early import country_set_name, country_sets, early_chains, flow_chain_rules
from pbxfw.compiler.elements import (
    BanElement,
    allow_intervals_by_service,
    ban_items,
    group_bans,
    host_items,
    interval_text,
    interval_texts,
    never_block_intervals,
)
from pbxfw.compiler.feeds import (
    FEEDS_CHAIN,
    FeedSet,
    all_scope_sets,
    feed_chain_rules,
    feed_input_rules,
    feed_set_declarations,
)
from pbxfw.compiler.names import (
    CHAIN_PRIORITY,
    FLOW_CACHE_COMMENT,
    FLOW_CHAIN,
    FLOW_MARK_COMMENT,
    FLOW_MARK_MASK,
    TABLE,
    TABLE_FAMILY,
    allow_set_name,
    ban_set_name,
    guard_set_name,
)
from pbxfw.compiler.ports import ServicePlan, port_items, scope_match, service_plan
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import PolicyIndex
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.domain.services import Service
from pbxfw.domain.settings import Settings

__all__ = [
    "compile_ruleset",
    "flow_cache_rule",
    "flow_mark",
    "flow_mark_rule",
]

_FAMILY = {4: "ip", 6: "ip6"}
_ADDR_TYPE = {4: "ipv4_addr", 6: "ipv6_addr"}
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

_Groups = dict[tuple[str, int], list[str]]


# A bulk step (10,000 networks, every country: 10^5–10^6 segments, intervals
# and lines, none in a cycle): the cyclic collector would go over them again
# and again, half the time of a compile with every country. Every caller
# gets this, the agent's full loads too.
@gc_paused()
def compile_ruleset(
    config: Configuration,
    bans: Sequence[BanElement] = (),
    *,
    index: PolicyIndex | None = None,
    early_sets: Sequence[tuple[str, str]] = (),
    feeds: Sequence[FeedSet] = (),
) -> str:
    """The whole ``table inet pbxfw`` as nft text, ending in a newline.

    ``index``: ``PolicyIndex.of(config)`` when the caller has built it
    already (``apply`` checks the administrator's address first); the same
    text either way. ``early_sets``: more address sets of the table, as
    (name ending in ``_v4``/``_v6``, reason of its drops), that the early
    chain drops before connection tracking (compiler/early.py ``EarlySet``).

    Contract:
    * deterministic: the same ``config`` and ``bans`` (in any order) give the
      same text;
    * only ``table inet pbxfw`` is declared; nothing else is touched;
    * ban sets for every jail of ``JAIL_SCOPES`` and both families are always
      declared (the IPS adds elements incrementally) and hold ``bans``; they
      are consulted only when ``ips_enabled``;
    * with ``firewall_enabled`` false no network filtering happens: only
      bans and the SIP rate limit can drop;
    * raises ValueError for a ban of an unknown jail;
    * ``feeds``: each feed's sets with its kept entries, and its drops
      (compiler.feeds); none given: the same text as before feeds.

    Load it with ``NftBackend.apply``, which replaces the table atomically.
    """
    settings = config.settings
    services = config.services()
    allow: _Groups = {}
    plan: ServicePlan | None = None
    mark: int | None = None
    countries: dict[int, list[str]] = {}
    # The allow policy is settled first, so its digest (the flow tag) is
    # known before the first rule is written: no rule is patched in later.
    if settings.firewall_enabled:
        policy = index or PolicyIndex.of(config)
        allow = _allow_items(policy, services)
        countries = country_sets(policy, services) if config.country_rules else {}
        plan = service_plan(services)
        mark = flow_mark(_policy_digest(allow, plan))
    out: list[str] = [
        f"table {TABLE_FAMILY} {TABLE} {{",
        '\tcomment "managed by pbxfw; edits are overwritten"',
    ]
    out += _sets(config, bans, allow)
    for v, items in countries.items():
        out += _declare(country_set_name(v), v, "interval", items)
    out += feed_set_declarations(feeds)
    rules = _input_rules(settings, plan, mark)
    if feeds:  # blocklist feeds (compiler.feeds): after the bans, before established
        at = rules.index("ct state established,related accept")
        rules[at:at] = feed_input_rules(feeds)
    out += _chain("input", rules)
    # A feed of scope ``all`` is dropped before conntrack too (its input
    # rule stays: it then only sees the never-block exemptions' packets).
    early = [*early_sets, *all_scope_sets(feeds)]
    for name, body in early_chains(settings, countries=bool(countries), extra_sets=early):
        out += _chain(name, body)
    if settings.ips_enabled:
        out += _chain("bans", _bans_rules(services))
    if feeds:
        out += _chain(FEEDS_CHAIN, feed_chain_rules(feeds, services))
    if settings.sip_rate_limit > 0:
        out += _chain("sip_rate", _sip_rate_rules(settings.sip_rate_limit))
    if plan is not None and mark is not None:
        for name, body in _service_chains(services, plan, mark, settings):
            out += _chain(name, body)
    out.append("}")
    return "\n".join(out) + "\n"


def _allow_items(index: PolicyIndex, services: Sequence[Service]) -> _Groups:
    """The elements of each allow set, by (service, family), in declaration
    order (services in order, v4 before v6)."""
    keys = [service.key for service in services]
    by_family = {v: allow_intervals_by_service(index, keys, v) for v in (4, 6)}
    return {(key, v): interval_texts(by_family[v][key], v) for key in keys for v in (4, 6)}


def _policy_digest(allow: _Groups, plan: ServicePlan) -> bytes:
    """What the allow decisions depend on (the allow sets, the port map, the
    services answering ping): its digest is the flow tag of the compiled
    text. The kernel adapter puts a fresh tag in at every load; the digest
    keeps the text deterministic."""
    policy = hashlib.sha256()
    for (key, v), items in allow.items():
        policy.update(f"{key} v{v}: {', '.join(items)}\n".encode())
    if plan.pieces:
        policy.update(plan.vmap.encode())
    if plan.icmp_owners:
        policy.update(f"\nicmp: {', '.join(plan.icmp_owners)}".encode())
    return policy.digest()


def _declare(
    name: str, version: int, flags: str, items: Sequence[str], extra: Sequence[str] = ()
) -> list[str]:
    """One ``set`` declaration."""
    return [
        f"\tset {name} {{",
        f"\t\ttype {_ADDR_TYPE[version]}",
        *(f"\t\t{line}" for line in extra),
        f"\t\tflags {flags}",
        *_elements(items, "\t\t"),
        "\t}",
    ]


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


def _sets(config: Configuration, bans: Iterable[BanElement], allow: _Groups) -> list[str]:
    """Every set of the table: never-block, jail bans, guards, allow, rate."""
    host_groups, net_groups = group_bans(bans)
    out: list[str] = []
    for v in (4, 6):
        items = [interval_text(a, b, v) for a, b in never_block_intervals(config, v)]
        out += _declare(f"never_block_v{v}", v, "interval", items)
    for jail in sorted(JAIL_SCOPES):
        for v in (4, 6):
            hosts = host_items(host_groups.get((jail, v), []), v)
            out += _declare(ban_set_name(jail, v), v, "timeout", hosts)
            nets = ban_items(net_groups.get((jail, v), []), v)
            out += _declare(ban_set_name(jail, v, subnets=True), v, "interval, timeout", nets)
    for v in (4, 6):
        # Every banned address and every banned subnet of every jail, longest
        # lifetime kept: the lookups a packet from an address that is not
        # banned pays (one in a hash, one in a mostly empty interval set).
        all_hosts = [h for key, group in host_groups.items() if key[1] == v for h in group]
        out += _declare(guard_set_name(v), v, "timeout", host_items(all_hosts, v))
        spans = [span for key, group in net_groups.items() if key[1] == v for span in group]
        out += _declare(
            guard_set_name(v, subnets=True), v, "interval, timeout", ban_items(spans, v)
        )
    for (key, v), items in allow.items():
        out += _declare(allow_set_name(key, v), v, "interval", items)
    if config.settings.sip_rate_limit > 0:
        for v in (4, 6):
            extra = (f"size {_RATE_METER_SIZE}", f"timeout {_RATE_METER_TIMEOUT}")
            out += _declare(f"sip_rate_v{v}", v, "dynamic, timeout", (), extra)
    return out


def _chain(name: str, rules: Sequence[str]) -> list[str]:
    """One ``chain`` block, after a blank line."""
    return ["", f"\tchain {name} {{", *(f"\t\t{r}" for r in rules), "\t}"]


def _input_rules(settings: Settings, plan: ServicePlan | None, mark: int | None) -> list[str]:
    """The input chain (the numbered steps of the module docstring); ``plan``
    and ``mark`` are given when the firewall is on."""
    rules: list[str] = [f"type filter hook input priority {CHAIN_PRIORITY}; policy accept;"]
    cache = [] if mark is None else [flow_cache_rule(mark)]
    loopback = 'iif "lo" accept comment "loopback"'
    if settings.sip_rate_limit > 0:
        sip_signalling = {
            ("udp", settings.sip_port, settings.sip_port),
            ("tcp", settings.sip_port, settings.sip_port),
            ("tcp", settings.tls_port, settings.tls_port),
        }
        # Before the flow cache: a flood of one cached flow is limited too
        # (loopback first: the PBX talking to itself is never limited).
        rules.append(loopback)
        rules.append(
            f"meta l4proto . th dport {{ {port_items(sip_signalling)} }} jump sip_rate "
            'comment "per-source SIP rate limit, established flows too"'
        )
        # Before the bans guard: the tag stands for this policy and the bans
        # at the time of the tag.
        rules += cache
    else:
        # The cache first of all: loopback flows are never marked (they are
        # accepted before any service chain), so the order changes no verdict.
        rules += cache
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
    if plan is None:
        return rules
    if plan.pieces:
        # Service traffic first: it is nearly all the traffic, and the
        # essentials below (ICMP errors, IGMP, DHCP) never match a port
        # of a service, so their order does not change any verdict.
        rules.append(f"meta l4proto . th dport vmap {{ {plan.vmap} }}")
    rules += [
        f"icmpv6 type {{ {_ICMPV6_ESSENTIAL} }} accept",
        f"icmp type {{ {_ICMPV4_ESSENTIAL} }} accept",
        "meta l4proto igmp accept",
        'udp sport 67 udp dport 68 accept comment "DHCPv4 client"',
        'ip6 saddr fe80::/10 udp sport 547 udp dport 546 accept comment "DHCPv6 client"',
    ]
    if plan.icmp_owners:
        rules.append(f"icmp type echo-request jump {plan.chain_names[plan.icmp_owners]}")
        rules.append(f"icmpv6 type echo-request jump {plan.chain_names[plan.icmp_owners]}")
    rules.append('counter drop comment "default deny: no network allows this"')
    return rules


def _bans_rules(services: Sequence[Service]) -> list[str]:
    """The bans chain: never-block sources return, then each jail's sets
    drop what its scope covers."""
    rules = ["ip saddr @never_block_v4 return", "ip6 saddr @never_block_v6 return"]
    for jail in sorted(JAIL_SCOPES):
        match = scope_match(JAIL_SCOPES[jail], services)
        for v in (4, 6):
            for subnets in (False, True):
                for m in match:
                    rules.append(
                        f"{_FAMILY[v]} saddr @{ban_set_name(jail, v, subnets)} "
                        f'{m}counter drop comment "jail {jail}"'
                    )
    return rules


def _sip_rate_rules(rate: int) -> list[str]:
    """The sip_rate chain: a per-source meter of ``rate`` packets a second."""
    rules = ["ip saddr @never_block_v4 return", "ip6 saddr @never_block_v6 return"]
    for v in (4, 6):
        rules.append(
            f"meta nfproto ipv{v} update @sip_rate_v{v} "
            f"{{ {_FAMILY[v]} saddr limit rate over {rate}/second "
            f"burst {_burst(rate)} packets }} counter drop"
        )
    return rules


def _service_chains(
    services: Sequence[Service], plan: ServicePlan, mark: int, settings: Settings
) -> list[tuple[str, list[str]]]:
    """The service chains (single services in service order, then the shared
    ones), then FLOW_CHAIN, which marks the flow with ``mark``."""
    order = {s.key: i for i, s in enumerate(services)}
    singles = sorted((g for g in plan.chain_names if len(g) == 1), key=lambda g: order[g[0]])
    chains = [(plan.chain_names[g], _allow_rules(g)) for g in singles]
    for g in plan.combos:
        comment = f'comment "services: {", ".join(g)}"'
        chains.append((plan.chain_names[g], [comment, *_allow_rules(g)]))
    chains.append((FLOW_CHAIN, flow_chain_rules(flow_mark_rule(mark), settings)))
    return chains


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
