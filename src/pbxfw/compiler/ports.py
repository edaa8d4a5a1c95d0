"""Ports and services: which chain a packet's port leads to.

The disjoint port pieces of the services (two services may share a port),
the chain of each group of owning services, and the ports a jail's ban
covers. Pure, like the rest of the compiler.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pbxfw.domain.decision import ALL_SERVICES
from pbxfw.domain.services import Service

__all__ = ["ServicePlan", "port_items", "scope_match", "service_pieces", "service_plan"]

_Owners = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ServicePlan:
    """How the input chain reaches the services (firewall on): the disjoint
    port pieces with the services owning each, the services answering ping,
    and the chain of each owner group (``svc_<key>``, or ``shared_<n>`` for
    a port shared by several services)."""

    pieces: list[tuple[str, int, int, _Owners]]
    icmp_owners: _Owners
    chain_names: dict[_Owners, str]
    combos: list[_Owners]

    @property
    def vmap(self) -> str:
        """The items of the port → service chain verdict map ("" if no port)."""
        return ", ".join(
            f"{proto} . {first if first == last else f'{first}-{last}'} "
            f": jump {self.chain_names[owners]}"
            for proto, first, last, owners in sorted(self.pieces, key=lambda p: (p[1], p[0]))
        )


def service_plan(services: Sequence[Service]) -> ServicePlan:
    """The port pieces, the ping owners and the chain of each owner group."""
    pieces = service_pieces(services)
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
    return ServicePlan(pieces, icmp_owners, names, combos)


def scope_match(scope: frozenset[str], services: Sequence[Service]) -> list[str]:
    """What a jail's ban covers: every packet for ``*``, else its services' ports."""
    if ALL_SERVICES in scope:
        return [""]
    covered = [s for s in services if s.key in scope]
    pieces = {(r.protocol, r.first, r.last) for s in covered for r in s.ports}
    match = []
    if pieces:
        match.append(f"meta l4proto . th dport {{ {port_items(pieces)} }} ")
    if any(s.icmp for s in covered):
        match.append("icmp type echo-request ")
        match.append("icmpv6 type echo-request ")
    return match


def port_items(pieces: Iterable[tuple[str, int, int]]) -> str:
    """``tcp . 22, udp . 5060-5061``: the items of an nft port set, by port."""
    return ", ".join(
        f"{proto} . {first}" if first == last else f"{proto} . {first}-{last}"
        for proto, first, last in sorted(pieces, key=lambda p: (p[1], p[0]))
    )


def service_pieces(services: Sequence[Service]) -> list[tuple[str, int, int, _Owners]]:
    """Disjoint (protocol, first, last, services covering it) port pieces.

    Two services may share a port (a custom service on a built-in port):
    that piece is open to the union of both services' networks.
    """
    result: list[tuple[str, int, int, _Owners]] = []
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
