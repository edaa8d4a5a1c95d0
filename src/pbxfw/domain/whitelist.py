"""The whitelist: what intrusion prevention never bans, in one place.

Loopback, this host's own addresses, the never-block networks and
``ips_whitelist``. Gathered once from a configuration, then asked per
failure (``covers``) or per ban (``reason``): the agent, the ban use cases
and the decision all use this one definition. ``index()`` answers
``reason`` for many subnets at once (a ban list import): same answers.
"""

from __future__ import annotations

import heapq
import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Sequence

from pbxfw.domain.addresses import IPAddress, IPNetwork
from pbxfw.domain.configuration import Configuration

__all__ = ["Whitelist", "WhitelistIndex"]

LOOPBACK_REASON = "loopback is never banned"


class Whitelist:
    """Everything never banned, gathered once from ``config`` and ``own``."""

    __slots__ = ("networks", "own")

    def __init__(self, config: Configuration, own: Iterable[IPAddress] = ()) -> None:
        self.own = list(own)
        self.networks: list[tuple[IPNetwork, str]] = [
            (n.subnet, f'it is in the never-block network "{n.name}" ({n.subnet})')
            for n in config.networks
            if n.never_block
        ]
        self.networks += [
            (ipaddress.ip_network(w), f"it is in ips_whitelist ({w})")
            for w in config.settings.ips_whitelist
        ]

    def including(self, other: Whitelist) -> Whitelist:
        """This whitelist widened by ``other``'s networks and addresses."""
        merged = Whitelist(Configuration(), self.own + other.own)
        merged.networks = self.networks + [n for n in other.networks if n not in self.networks]
        return merged

    def covers(self, address: IPAddress) -> bool:
        """Is this one address never banned?"""
        if address.is_loopback or address in self.own:
            return True
        return any(
            white.version == address.version and address in white for white, _ in self.networks
        )

    def reason(self, subnet: IPNetwork) -> str | None:
        """Why ``subnet`` may never be banned (it overlaps the whitelist), or None."""
        if subnet.is_loopback:
            return LOOPBACK_REASON
        for address in self.own:
            if address.version == subnet.version and address in subnet:
                return _own_reason(address)
        for white, why in self.networks:
            if white.version == subnet.version and white.overlaps(subnet):  # type: ignore[arg-type]
                return why
        return None

    def index(self) -> WhitelistIndex:
        """This whitelist prepared for many ``reason`` questions."""
        return WhitelistIndex(self)


def _own_reason(address: IPAddress) -> str:
    return f"{address} is this host's own address"


class _Segments:
    """Integer intervals, each with a rank and a reason, cut into disjoint
    segments that each know the lowest rank covering them: the first reason
    ``Whitelist.reason`` would find. ``bounds`` are the segment starts;
    address ``x`` lies in segment ``bisect_right(bounds, x)`` (segment 0:
    below every interval)."""

    __slots__ = ("bounds", "ranks", "reasons")

    def __init__(self, intervals: Sequence[tuple[int, int, str]]) -> None:
        # intervals: (first, last, reason), the rank being the position.
        self.reasons = [why for _, _, why in intervals] + [None]
        none = len(intervals)
        self.bounds = sorted({p for first, last, _ in intervals for p in (first, last + 1)})
        starts = sorted((first, rank) for rank, (first, _, _) in enumerate(intervals))
        self.ranks = [none]
        active: list[tuple[int, int]] = []  # heap of (rank, last)
        i = 0
        for start in self.bounds:
            while i < len(starts) and starts[i][0] == start:
                rank = starts[i][1]
                heapq.heappush(active, (rank, intervals[rank][1]))
                i += 1
            while active and active[0][1] < start:
                heapq.heappop(active)
            self.ranks.append(active[0][0] if active else none)

    def first(self, low: int, high: int) -> str | None:
        """The reason of the lowest-ranked interval meeting ``low … high``."""
        bounds = self.bounds
        ranks = self.ranks
        lo = bisect_right(bounds, low)
        hi = bisect_right(bounds, high)
        return self.reasons[ranks[lo] if lo == hi else min(ranks[lo : hi + 1])]


class WhitelistIndex:
    """``Whitelist.reason`` for many subnets: sorted integer intervals and
    bisection instead of a walk over every network per subnet, with the same
    precedence (loopback, own addresses in order, then networks in order) and
    the same messages."""

    __slots__ = ("_hosts_v4", "_networks", "_own")

    def __init__(self, whitelist: Whitelist) -> None:
        self._own = list(whitelist.own)
        networks: dict[int, list[tuple[int, int, str]]] = {4: [], 6: []}
        for white, why in whitelist.networks:
            first = int(white.network_address)
            networks[white.version].append((first, first | int(white.hostmask), why))
        self._networks = {version: _Segments(found) for version, found in networks.items()}
        # For one IPv4 host every rule is "contains the host": one table.
        loopback = ipaddress.IPv4Network("127.0.0.0/8")
        own_v4 = [
            (int(a), int(a), _own_reason(a))
            for a in self._own
            if isinstance(a, ipaddress.IPv4Address)
        ]
        self._hosts_v4 = _Segments(
            [(int(loopback.network_address), int(loopback.broadcast_address), LOOPBACK_REASON)]
            + own_v4
            + networks[4]
        )

    def reason(self, subnet: IPNetwork) -> str | None:
        """Exactly ``Whitelist.reason(subnet)``."""
        if subnet.is_loopback:
            return LOOPBACK_REASON
        for address in self._own:
            if address.version == subnet.version and address in subnet:
                return _own_reason(address)
        first = int(subnet.network_address)
        return self._networks[subnet.version].first(first, first | int(subnet.hostmask))

    def ipv4_host_reasons(self, hosts: Iterable[int]) -> list[str | None]:
        """``Whitelist.reason`` of the IPv4 ``/32`` of each address, an integer
        (a negative one stands for no address: None)."""
        segments = self._hosts_v4
        bounds = segments.bounds
        reasons = [segments.reasons[rank] for rank in segments.ranks]
        return [reasons[bisect_right(bounds, host)] for host in hosts]
