"""The drop before connection tracking and the conntrack flood protection (issue 18).

Two base chains of ``table inet pbxfw`` at priority ``raw`` (-300), which runs
before connection tracking (-200):

``early`` (hook prerouting)
    1. (``ips_enabled``) an address in a ban guard set jumps to ``early_bans``:
       the jails whose scope is every packet (``manual``, ``recidive``) drop;
    2. (firewall on) an address of a country blocked for every service
       (``early_country_v4/_v6``), and an address in one of the extra sets
       the caller names (blocklist feeds whose scope is every service) jump
       to ``early_drop``, which drops and counts each drop under the reason
       given with its set (kernel.counters reads it from the rule's comment);
    3. (firewall on and ``sip_notrack``) the flood protection: UDP to the SIP
       port or the RTP range, from a source the allow set of ``sip`` accepts,
       to an address of this host, is not tracked (``notrack``).

    Loopback, ICMPv6 neighbour discovery and never-block sources (never-block
    networks, ``ips_whitelist``) return from ``early_bans`` and ``early_drop``
    before any drop: they are never dropped here. Those checks sit in the
    jumped-to chains, so a packet from an address that is in no set pays
    only the set lookups.

``early_out`` (hook output; firewall on and ``sip_notrack``)
    The PBX's UDP from the SIP port or the RTP range to an address the allow
    set of ``sip`` accepts is not tracked either, so the answers to a flood
    create no entry and both directions of such traffic are alike.

A packet that is not tracked meets the input chain as ``ct state
untracked``: the ban guards and the allow sets decide it (statelessly, as
they decide every new flow), the flow cache cannot hold it (there is no
``ct mark``), so ``flow_allowed`` ends in a plain ``accept`` after the
marking rule (``flow_chain_rules``). docs/nftables.md explains the choices
(hook, priority, what stays tracked and why). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence

from pbxfw.compiler.elements import interval_text, merge_intervals
from pbxfw.compiler.names import allow_set_name, ban_set_name, guard_set_name
from pbxfw.domain.decision import PolicyIndex
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.domain.network_model import Verdict
from pbxfw.domain.services import Service
from pbxfw.domain.settings import Settings

__all__ = [
    "COUNTRY_REASON",
    "EARLY_CHAIN",
    "EARLY_OUT_CHAIN",
    "EARLY_PRIORITY",
    "EarlySet",
    "country_set_name",
    "early_chains",
    "early_country_intervals",
    "early_jails",
    "notrack_enabled",
]

#: Before connection tracking (-200) and after defragmentation (-400).
EARLY_PRIORITY = "raw"
EARLY_CHAIN = "early"
EARLY_OUT_CHAIN = "early_out"
_BANS_CHAIN = "early_bans"
_DROP_CHAIN = "early_drop"

_FAMILY = {4: "ip", 6: "ip6"}
_ND_TYPES = (
    "nd-router-solicit, nd-router-advert, nd-neighbor-solicit, nd-neighbor-advert, nd-redirect"
)

_Chain = tuple[str, list[str]]
#: An extra set dropped early: its name (ending in ``_v4``/``_v6``) and the
#: reason its drops are counted under, as the rule's comment starts
#: (``feed spamhaus``: kernel.counters reads the ``feed NAME`` label from it).
#: Given by whoever makes the set, never read back out of the set's name:
#: ``feed_spam_net_v4`` is the host set of a feed ``spam_net`` as well as
#: the block set of a feed ``spam``.
EarlySet = tuple[str, str]
#: The reason of the countries' early drops (kernel.counters: ``country``).
COUNTRY_REASON = "country"


def country_set_name(version: int) -> str:
    """``early_country_v4``: addresses of the countries blocked for every service."""
    return f"early_country_v{version}"


def early_jails() -> list[str]:
    """The jails whose bans cover every packet (``manual``, ``recidive``), sorted."""
    return sorted(jail for jail, scope in JAIL_SCOPES.items() if "*" in scope)


def notrack_enabled(settings: Settings) -> bool:
    """Whether the flood protection is in the table: it relies on the allow
    sets, which exist only with the firewall on."""
    return settings.firewall_enabled and settings.sip_notrack


def early_country_intervals(
    index: PolicyIndex, services: Sequence[Service], version: int
) -> list[tuple[int, int]]:
    """The addresses whose country rule blocks every service, merged.

    Only addresses decided by a country rule (their most specific network is
    a permanent ``Internet`` network): an explicit network inside a blocked
    country keeps its own verdicts. "Every service" is every service of the
    catalogue named with ``block`` by the rule itself, not verdicts inherited
    from the ``Internet`` network: an early drop also drops the answers to the
    PBX's own connections there, which only a rule that says so may do.
    """
    keys = [s.key for s in services]
    spans = []
    for segment in index.segments(version):
        rule = segment.rule
        if rule is None or segment.base is None:
            continue
        if all(rule.services.get(key) is Verdict.BLOCK for key in keys):
            spans.append((segment.first, segment.last))
    return merge_intervals(spans)


def country_sets(index: PolicyIndex, services: Sequence[Service]) -> dict[int, list[str]]:
    """The elements of ``early_country_v4``/``_v6``, by family."""
    return {
        v: [interval_text(a, b, v) for a, b in early_country_intervals(index, services, v)]
        for v in (4, 6)
    }


def _family_of(name: str) -> int:
    if name.endswith("_v4"):
        return 4
    if name.endswith("_v6"):
        return 6
    raise ValueError(f"extra early set {name!r}: the name must end in _v4 or _v6")


def early_chains(
    settings: Settings, *, countries: bool, extra_sets: Sequence[EarlySet] = ()
) -> list[_Chain]:
    """The chains of the module docstring, as (name, rules), the hook line first.

    ``countries``: the table declares ``early_country_v4/_v6`` (firewall on).
    ``extra_sets``: (set name, reason) of address sets of the table whose
    addresses are dropped here for every packet, e.g. a feed's
    ``("feed_spamhaus_v4", "feed spamhaus")`` (compiler.feeds
    ``all_scope_sets``); each drop is counted under its reason. Raises
    ValueError for a name not ending in ``_v4``/``_v6`` and for one name
    given with two reasons. No chain when there is nothing to drop and
    nothing to leave untracked.
    """
    rules = [f"type filter hook prerouting priority {EARLY_PRIORITY}; policy accept;"]
    chains: list[_Chain] = [(EARLY_CHAIN, rules)]
    if settings.ips_enabled:
        for v in (4, 6):
            for subnets in (False, True):
                rules.append(f"{_FAMILY[v]} saddr @{guard_set_name(v, subnets)} jump {_BANS_CHAIN}")
        chains.append((_BANS_CHAIN, _early_bans_rules()))
    drop_sets = [(country_set_name(v), COUNTRY_REASON) for v in (4, 6)] if countries else []
    drop_sets += _extra(extra_sets)
    for name, _ in drop_sets:
        rules.append(f"{_FAMILY[_family_of(name)]} saddr @{name} jump {_DROP_CHAIN}")
    if drop_sets:
        # The set is looked up again here (only for a packet it holds) so
        # that each drop is counted under its reason (kernel.counters).
        drops = [
            f"{_FAMILY[_family_of(name)]} saddr @{name} {_drop(why)}" for name, why in drop_sets
        ]
        chains.append((_DROP_CHAIN, [*_exempt(), *drops]))
    if notrack_enabled(settings):
        ports = _sip_udp_ports(settings)
        for v in (4, 6):
            rules.append(
                f"udp dport {ports} {_FAMILY[v]} saddr @{allow_set_name('sip', v)} "
                f"fib daddr type local notrack"
                + (' comment "flood protection: allowed SIP/RTP is not tracked"' if v == 4 else "")
            )
        out = [
            f"type filter hook output priority {EARLY_PRIORITY}; policy accept;",
            'oif "lo" accept comment "loopback"',
        ]
        for v in (4, 6):
            out.append(f"udp sport {ports} {_FAMILY[v]} daddr @{allow_set_name('sip', v)} notrack")
        chains.append((EARLY_OUT_CHAIN, out))
    return chains if len(rules) > 1 else []


def _extra(extra_sets: Sequence[EarlySet]) -> list[EarlySet]:
    """``extra_sets`` once each, IPv4 first, then by name (a stable text)."""
    reasons: dict[str, str] = {}
    for name, why in extra_sets:
        _family_of(name)
        if reasons.setdefault(name, why) != why:
            raise ValueError(
                f"extra early set {name!r} given with two reasons: {reasons[name]!r}, {why!r}"
            )
    return sorted(reasons.items(), key=lambda item: (_family_of(item[0]), item[0]))


def _sip_udp_ports(settings: Settings) -> str:
    """``{ 5060, 10000-10800 }``: the UDP ports of SIP and RTP."""
    sip, first, last = settings.sip_port, settings.rtp_port_from, settings.rtp_port_to
    if first <= sip <= last:
        return f"{first}-{last}" if first != last else str(first)
    rtp = str(first) if first == last else f"{first}-{last}"
    items = sorted([(sip, str(sip)), (first, rtp)])
    return "{ " + ", ".join(text for _, text in items) + " }"


def _exempt() -> list[str]:
    """What is never dropped early: loopback, neighbour discovery, never-block."""
    return [
        'iif "lo" return comment "loopback"',
        f'icmpv6 type {{ {_ND_TYPES} }} return comment "IPv6 neighbour discovery"',
        "ip saddr @never_block_v4 return",
        "ip6 saddr @never_block_v6 return",
    ]


def _drop(why: str) -> str:
    return f'counter drop comment "{why}: before connection tracking"'


def _early_bans_rules() -> list[str]:
    """The exempt return; the bans of the every-packet jails drop."""
    rules = _exempt()
    for jail in early_jails():
        for v in (4, 6):
            for subnets in (False, True):
                rules.append(
                    f"{_FAMILY[v]} saddr @{ban_set_name(jail, v, subnets)} {_drop(f'jail {jail}')}"
                )
    return rules


def flow_chain_rules(mark_rule: str, settings: Settings) -> list[str]:
    """FLOW_CHAIN's rules: the marking rule, and with the flood protection a
    plain ``accept`` for the untracked packets the marking rule cannot mark
    (reading ``ct mark`` of a packet without conntrack ends that rule)."""
    if not notrack_enabled(settings):
        return [mark_rule]
    return [mark_rule, 'accept comment "untracked (flood protection): nothing to remember"']
