"""The decision of DESIGN §2, as pure functions over a Configuration.

``PolicyIndex`` flattens the nested networks of each address family into
disjoint, sorted intervals, each owned by the most specific network that
covers it. A lookup is one ``bisect`` over the interval starts: O(log n)
whatever the number of networks. The compiler reads the same intervals, so
``pbxfw check`` and the kernel cannot disagree about which network decides.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple

from pbxfw.bulk import gc_paused
from pbxfw.domain.addresses import IPAddress, IPNetwork, parse_address
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.countries import CountryRule, rule_for
from pbxfw.domain.geo import CountryTable, rule_runs
from pbxfw.domain.network_model import Network, Verdict
from pbxfw.domain.whitelist import Whitelist
from pbxfw.errors import FieldError, ValidationError

__all__ = [
    "ALL_SERVICES",
    "ActiveBan",
    "Decision",
    "PolicyIndex",
    "Segment",
    "check",
]

#: A ban scope that covers every service (the recidive jail, manual bans).
ALL_SERVICES = "*"


class Segment(NamedTuple):
    """Addresses ``first``–``last`` (as integers) decided by ``network``.

    In a permanent ``Internet`` network refined by country rules, ``rule`` is
    one of the rules with the verdicts of these addresses (neighbouring
    countries whose rules say the same are one segment) and ``network``
    carries those verdicts over the network's (same id, name and subnet):
    the compiler reads the verdicts; ``check`` names the address's own rule. A tuple: a compile with every country makes
    hundreds of thousands of them.
    """

    first: int
    last: int
    network: Network
    rule: CountryRule | None = None
    #: the permanent network itself, when ``network`` carries a rule's verdicts
    base: Network | None = None


@dataclass(frozen=True, slots=True)
class ActiveBan:
    """A ban as the decision sees it: who, for which services, why."""

    subnet: IPNetwork
    jail: str
    scope: frozenset[str]
    reason: str = ""

    def covers(self, service: str) -> bool:
        return ALL_SERVICES in self.scope or service in self.scope


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer of ``check``: verdict, the deciding network or ban, and why."""

    address: str
    service: str
    verdict: Literal["allow", "block", "banned"]
    network: Network | None
    reason: str
    ban: ActiveBan | None = None
    #: ``{"code": "DE"|None, "rule": NAME}`` when a country rule decided.
    country: dict[str, str | None] | None = None

    def as_json(self) -> dict[str, object]:
        network = self.network
        return {
            "address": self.address,
            "service": self.service,
            "verdict": self.verdict,
            "network": None
            if network is None
            else {"id": network.id, "name": network.name, "subnet": str(network.subnet)},
            "reason": self.reason,
        } | ({} if self.country is None else {"country": self.country})


def _flatten(networks: Sequence[Network], bits: int) -> list[Segment]:
    """Disjoint segments, each owned by the longest prefix covering it.

    CIDR blocks are either nested or disjoint, so one sweep with a stack of
    open blocks (sorted by start, broader first) resolves the nesting.
    """
    # The last address by arithmetic: ``broadcast_address`` builds an
    # address object per network (10,000 of them for one compile).
    spans = sorted(
        (
            (first, first + (1 << (bits - n.subnet.prefixlen)) - 1, n)
            for n in networks
            for first in (int(n.subnet.network_address),)
        ),
        key=lambda t: (t[0], -t[1]),
    )
    segments: list[Segment] = []
    stack: list[tuple[int, Network]] = []
    pos = 0

    def close_until(limit: int) -> None:
        nonlocal pos
        while stack and stack[-1][0] < limit:
            end, net = stack.pop()
            if pos <= end:
                segments.append(Segment(pos, end, net))
            pos = end + 1

    for start, end, network in spans:
        close_until(start)
        if stack and pos < start:
            segments.append(Segment(pos, start - 1, stack[-1][1]))
        pos = start
        stack.append((end, network))
    close_until(1 << bits)
    return segments


def _refine(
    segments: list[Segment], runs: Sequence[tuple[int, int, CountryRule | None]]
) -> list[Segment]:
    """Cut the segments of the permanent networks along the country rules' runs.

    Only a permanent (``Internet``) network's segments are cut: every
    explicit network wins over any country rule. A rule's verdicts replace
    the network's for the services it names; the others stay the network's.
    """
    out: list[Segment] = []
    append = out.append
    new_tuple = tuple.__new__
    derived: dict[tuple[int, int], Network] = {}
    j = 0
    for segment in segments:
        network = segment.network
        # The permanent networks are exactly the two /0s (subnets are unique
        # and the permanent ones are never deleted); by subnet, because a
        # configuration read back from a document does not carry the flag.
        if network.subnet.prefixlen != 0:
            append(segment)
            continue
        seg_first, seg_last = segment.first, segment.last
        while runs[j][1] < seg_first:
            j += 1
        pos = seg_first
        k = j
        while pos <= seg_last:
            _, last, rule = runs[k]
            end = last if last < seg_last else seg_last
            if rule is None or not rule.services:
                append(Segment(pos, end, network))
            else:
                # The runs carry one rule object per set of verdicts.
                key = (id(network), id(rule))
                refined = derived.get(key)
                if refined is None:
                    merged = dict(network.services)
                    merged.update(rule.services)
                    refined = derived[key] = network.with_changes(services=merged)
                # tuple.__new__: Segment's own __new__ is a Python function.
                append(new_tuple(Segment, (pos, end, refined, rule, network)))
            pos = end + 1
            if end == last:
                k += 1
    return out


class PolicyIndex:
    """Longest-prefix lookup over a set of networks (both families), refined
    by the country rules where the most specific network is permanent."""

    __slots__ = ("_named", "_plain", "_segments", "_starts")

    @gc_paused()  # every country: 10^5–10^6 segments, none in a cycle
    def __init__(
        self,
        networks: Iterable[Network],
        rules: Sequence[CountryRule] = (),
        table: CountryTable | None = None,
    ) -> None:
        by_family: dict[int, list[Network]] = {4: [], 6: []}
        for network in networks:
            by_family[network.subnet.version].append(network)
        self._segments = {4: _flatten(by_family[4], 32), 6: _flatten(by_family[6], 128)}
        self._plain = dict(self._segments)
        #: the services some country rule decides
        self._named = frozenset(key for rule in rules for key in rule.services)
        if rules:
            for version in (4, 6):
                runs = rule_runs(table, rules, version)
                self._segments[version] = _refine(self._segments[version], runs)
        self._starts = {v: [s.first for s in segs] for v, segs in self._segments.items()}

    @classmethod
    def of(cls, config: Configuration) -> PolicyIndex:
        """The index of a whole configuration: its networks and country rules."""
        return cls(config.networks, config.country_rules, config.countries)

    def segments(self, version: int) -> list[Segment]:
        """The flattened segments of one family, in address order."""
        return self._segments[version]

    def segments_for(self, version: int, service: str) -> list[Segment]:
        """Segments of one family that give ``service`` the verdicts of
        :meth:`segments`: the networks' own (ten thousand, not the half
        million cut along the countries) when no country rule names
        ``service``, since a rule changes only the services it names."""
        return self._segments[version] if service in self._named else self._plain[version]

    def segment(self, address: IPAddress) -> Segment | None:
        """The segment holding ``address``, or None (no network contains it)."""
        version = address.version
        value = int(address)
        i = bisect_right(self._starts[version], value) - 1
        if i >= 0:
            segment = self._segments[version][i]
            if segment.first <= value <= segment.last:
                return segment
        return None

    def lookup(self, address: IPAddress) -> Network | None:
        """The most specific network containing ``address``, or None."""
        segment = self.segment(address)
        return None if segment is None else segment.network


def check(
    config: Configuration,
    address: str | IPAddress,
    service: str,
    *,
    bans: Iterable[ActiveBan] = (),
    index: PolicyIndex | None = None,
) -> Decision:
    """Decide a packet from ``address`` to ``service`` (DESIGN §2, in order).

    ``index`` may be passed to reuse one PolicyIndex over many calls (the
    networks' alone, or ``PolicyIndex.of(config)``: the same answers).
    Raises ValidationError for a bad address or an unknown service.
    """
    ip = parse_address(address) if isinstance(address, str) else address
    if not config.has_service(service):
        known = ", ".join(config.service_keys())
        raise ValidationError(FieldError("service", f"unknown service {service!r}; known: {known}"))
    text = str(ip)
    if ip.is_loopback:
        return Decision(text, service, "allow", None, "loopback is always accepted")
    if config.settings.ips_enabled:
        for ban in bans:
            if ip.version == ban.subnet.version and ip in ban.subnet and ban.covers(service):
                if Whitelist(config).covers(ip):
                    break
                why = f"banned by jail {ban.jail}" + (f": {ban.reason}" if ban.reason else "")
                return Decision(text, service, "banned", None, why, ban)
    if not config.settings.firewall_enabled:
        return Decision(text, service, "allow", None, "the firewall is switched off")
    # Without an index, the networks' alone: the country's rule is looked up
    # below (one bisect), not folded into a whole refined index for one answer.
    segment = (index or PolicyIndex(config.networks)).segment(ip)
    if segment is None:
        return Decision(text, service, "block", None, "no network contains this address")
    network = segment.base or segment.network
    rule = code = None
    if network.subnet.prefixlen == 0 and config.country_rules:
        # The address's own country names its rule (in a refined index, runs
        # of rules with the same verdicts are joined).
        code = None if config.countries is None else config.countries.code(ip)
        rule = rule_for(code, config.country_rules)
    verdict = network.verdict(service)
    if rule is not None and service in rule.services:
        # The refined index already carries it; the networks' alone do not.
        verdict = rule.services[service]
    word = "allows" if verdict is Verdict.ALLOW else "blocks"
    where = f'most specific network "{network.name}" ({network.subnet})'
    if rule is not None and service in rule.services:
        done = "allowed" if verdict is Verdict.ALLOW else "blocked"
        reason = f"{done}: country {code or 'unknown'}, rule {rule.name!r} ({where})"
        country: dict[str, str | None] = {"code": code, "rule": rule.name}
        return Decision(text, service, verdict.value, network, reason, country=country)
    return Decision(text, service, verdict.value, network, f"{where} {word} {service}")
