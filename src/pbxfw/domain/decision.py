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
from typing import Literal

from pbxfw.domain.addresses import IPAddress, IPNetwork, parse_address
from pbxfw.domain.configuration import Configuration
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


@dataclass(frozen=True, slots=True)
class Segment:
    """Addresses ``first``–``last`` (as integers) decided by ``network``."""

    first: int
    last: int
    network: Network


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
        }


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


class PolicyIndex:
    """Longest-prefix lookup over a set of networks (both families)."""

    __slots__ = ("_segments", "_starts")

    def __init__(self, networks: Iterable[Network]) -> None:
        by_family: dict[int, list[Network]] = {4: [], 6: []}
        for network in networks:
            by_family[network.subnet.version].append(network)
        self._segments = {4: _flatten(by_family[4], 32), 6: _flatten(by_family[6], 128)}
        self._starts = {v: [s.first for s in segs] for v, segs in self._segments.items()}

    def segments(self, version: int) -> list[Segment]:
        """The flattened segments of one family, in address order."""
        return self._segments[version]

    def lookup(self, address: IPAddress) -> Network | None:
        """The most specific network containing ``address``, or None."""
        version = address.version
        value = int(address)
        i = bisect_right(self._starts[version], value) - 1
        if i >= 0:
            segment = self._segments[version][i]
            if segment.first <= value <= segment.last:
                return segment.network
        return None


def check(
    config: Configuration,
    address: str | IPAddress,
    service: str,
    *,
    bans: Iterable[ActiveBan] = (),
    index: PolicyIndex | None = None,
) -> Decision:
    """Decide a packet from ``address`` to ``service`` (DESIGN §2, in order).

    ``index`` may be passed to reuse one PolicyIndex over many calls.
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
    network = (index or PolicyIndex(config.networks)).lookup(ip)
    if network is None:
        return Decision(text, service, "block", None, "no network contains this address")
    verdict = network.verdict(service)
    word = "allows" if verdict is Verdict.ALLOW else "blocks"
    reason = f'most specific network "{network.name}" ({network.subnet}) {word} {service}'
    return Decision(text, service, verdict.value, network, reason)
