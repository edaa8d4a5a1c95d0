"""The mirror of the kernel's ban sets, and the guard sets' arithmetic.

``BanSets`` remembers what the kernel's ban sets hold (each (subnet, jail)
with its expiry) and computes, without any I/O, the element changes that
take them from there to a wanted state: ``sync`` (make them hold the
stored bans) and ``add_new`` (the detector's fresh bans, the fast path).
The answer, ``BanChanges``, is committed by a ``Backend`` as one
transaction (``commit_changes``); only once that succeeded does the caller
record it with ``landed``, so an attempt that fails is made again in full,
never half forgotten.

The guard sets (``banned_v4``, ``banned_net_v4``, …: docs/nftables.md) hold
every banned subnet once, whatever its jails, for as long as its longest
ban: a subnet is guarded while any jail bans it, is unguarded with its last
ban, and its guard is renewed to the longest remaining ban when one of its
bans goes or changes.

Keys are text (``subnet_key``), not networks: an IPv4Network's hash is
recomputed on every lookup, which 100,000 imported bans make visible.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pbxfw.compiler.nft import BanElement
from pbxfw.domain.addresses import IPNetwork, address_text
from pbxfw.domain.bans import Ban
from pbxfw.kernel.backend import Backend

__all__ = ["BanChanges", "BanSets", "BanStep", "commit_changes", "subnet_key"]

#: (subnet as text, jail)
Key = tuple[str, str]

_ntoa = socket.inet_ntoa


def subnet_key(subnet: IPNetwork) -> str:
    """``subnet`` as text, the key of the mirror (IPv4: what ``str()`` gives;
    IPv6: ``inet_ntop``'s text, which writes ``::/96`` as ``::a.b.c.d``).

    An IPv4 subnet (nearly every ban: a sync keys 100,000 of them) is
    formatted by the C ``inet_ntoa`` from the private fields ``ipaddress``
    keeps its value and length in (as domain.addresses
    ``ipv4_host_network`` sets them; tests/kernel/test_bansets.py checks
    this against ``str()``): the public properties are a Python call each.
    """
    if subnet._max_prefixlen == 32:  # type: ignore[union-attr]
        value: int = subnet.network_address._ip  # type: ignore[union-attr]
        return f"{_ntoa(value.to_bytes(4, 'big'))}/{subnet._prefixlen}"  # type: ignore[union-attr]
    return f"{address_text(int(subnet.network_address), 6)}/{subnet.prefixlen}"


@dataclass(frozen=True, slots=True)
class BanStep:
    """One buffered call of a backend: ``add(bans, guard, refresh=...)`` or
    ``delete(bans, guard)`` (``guard`` None: the same subnets as ``bans``)."""

    action: Literal["add", "delete"]
    bans: Sequence[BanElement]
    guard: Sequence[BanElement] | None = None
    refresh: bool = True


@dataclass(frozen=True, slots=True)
class BanChanges:
    """The element changes of one transaction, and what the kernel holds
    once it has landed (``held``). ``removed``: the (subnet, jail) bans it
    takes out; ``added`` / ``renewed``: how many bans it puts in / renews."""

    steps: tuple[BanStep, ...] = ()
    held: dict[Key, float] = field(default_factory=dict)
    removed: tuple[tuple[IPNetwork, str], ...] = ()
    added: int = 0
    renewed: int = 0

    def __bool__(self) -> bool:
        return bool(self.steps)


def commit_changes(backend: Backend, changes: BanChanges) -> None:
    """Buffer ``changes`` in ``backend`` and commit them as one transaction.

    Nothing stays buffered afterwards, whatever fails: a later commit never
    sends a stale half of this one.
    """
    try:
        for step in changes.steps:
            if step.action == "add":
                backend.add(step.bans, step.guard, refresh=step.refresh)
            else:
                backend.delete(step.bans, step.guard)
        backend.commit()
    finally:
        backend.discard()


def _elements(bans: Iterable[Ban], now: float) -> list[BanElement]:
    """Kernel elements of the bans still active at ``now``, each with its
    remaining lifetime."""
    elements = []
    for b in bans:
        left = b.remaining(now)
        if left > 0:
            elements.append(BanElement(b.subnet, b.jail, left))
    return elements


def guard_elements(
    subnets: Iterable[IPNetwork], held: dict[Key, float], now: float
) -> list[BanElement]:
    """Guard elements for ``subnets``: each lasts as long as its longest ban
    in ``held``; a subnet no ban in ``held`` covers gets none."""
    longest: dict[str, float] = {}
    for (subnet, _jail), expires in held.items():
        if expires > longest.get(subnet, 0.0):
            longest[subnet] = expires
    unique = {subnet_key(s): s for s in subnets}
    return [
        BanElement(s, "manual", max(1, int(longest[text] - now + 0.999)))
        for text, s in unique.items()
        if text in longest
    ]


class BanSets:
    """What the kernel's ban sets hold, and the changes that move them.

    Pure: no kernel, no store, no clock (``now`` is passed in). The caller
    commits a ``BanChanges`` through a backend and then calls ``landed``.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        # (subnet as text, jail) → expiry (epoch seconds) of what the kernel holds
        self._held: dict[Key, float] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def active(self, now: float) -> int:
        """How many bans (subnet and jail) the kernel holds at ``now`` (the
        expired ones leave the kernel by their own timeout)."""
        return sum(1 for expires in self._held.values() if expires > now)

    def expiry(self, subnet: IPNetwork, jail: str) -> float | None:
        """When the kernel's ban of ``subnet`` in ``jail`` ends; None: not held."""
        return self._held.get((subnet_key(subnet), jail))

    def snapshot(self) -> Mapping[Key, float]:
        """What the kernel holds, (subnet as text, jail) → expiry: the current
        mapping itself, which is replaced whole on every change and never
        changed in place, so another thread may read it (the metrics)."""
        return self._held

    def held(self) -> list[tuple[str, str, float]]:
        """(subnet as text, jail, expiry) of every ban the kernel holds."""
        return [(subnet, jail, expires) for (subnet, jail), expires in self._held.items()]

    def loaded(self, elements: Iterable[BanElement], now: float) -> None:
        """A whole table holding ``elements`` was loaded at ``now``."""
        self._held = {
            (subnet_key(e.subnet), e.jail): now + (e.expires_in_seconds or 0) for e in elements
        }

    def unsure(self, changes: BanChanges) -> None:
        """``changes`` failed without the kernel saying what landed (an
        answer lost): hold both what was held and what they would have put
        in, each for its longer expiry. Whatever of it is not so is put right
        by the caller's next whole-table load or full comparison, which
        then knows to remove an element that did land."""
        held = dict(changes.held)
        for key, expires in self._held.items():
            if expires > held.get(key, 0.0):
                held[key] = expires
        self._held = held

    def landed(self, changes: BanChanges) -> None:
        """``changes`` were committed: the kernel holds ``changes.held``."""
        self._held = changes.held

    def add_new(self, bans: Sequence[Ban], now: float) -> BanChanges:
        """Put ``bans`` (just decided) in the sets, renewing any already there,
        with their subnets' guards lasting as long as their longest ban."""
        held = dict(self._held)
        for ban in bans:
            held[(subnet_key(ban.subnet), ban.jail)] = ban.expires_at
        step = BanStep(
            "add",
            _elements(bans, now),
            guard_elements((b.subnet for b in bans), held, now),
        )
        return BanChanges((step,), held, added=len(bans))

    def sync(self, bans: Iterable[Ban], now: float, *, partial: bool = False) -> BanChanges:
        """The changes that make the sets hold exactly the active ``bans``
        (``partial``: hold them too, removing nothing: the bans written since
        the agent's last read, agent.rules).

        At most three steps: the removals (with the guards of subnets no
        other jail bans, and renewed guards for those another jail still
        bans), the new bans (plain adds: 100,000 imported addresses are one
        batch), the renewed ones (an expiry more than a second off).
        Empty (false) when the sets already hold ``bans``.
        """
        desired = {(subnet_key(b.subnet), b.jail): b for b in bans if b.expires_at > now}
        known = self._held
        gone = [] if partial else [k for k in known if k not in desired]
        fresh = [(k, b) for k, b in desired.items() if abs(known.get(k, -1) - b.expires_at) > 1]
        if not gone and not fresh:
            return BanChanges(held=known)
        guarded_before = {subnet for subnet, _ in known}
        renewed = [b for k, b in fresh if k in known]
        new: list[BanElement] = []
        # The guard of a subnet no jail banned before: its longest new ban
        # (the same element: guard sets ignore the jail).
        first_guard: dict[str, BanElement] = {}
        for key, b in fresh:
            if key in known:
                continue
            left = b.remaining(now)
            element = BanElement(b.subnet, key[1], left)
            new.append(element)
            text = key[0]
            if text not in guarded_before:
                seen = first_guard.get(text)
                if seen is None or left > (seen.expires_in_seconds or 0):
                    first_guard[text] = element
        regard = [b.subnet for (text, _j), b in fresh if text in guarded_before]
        gone_subnets = {s: ipaddress.ip_network(s) for s, _ in gone}
        # What the kernel will hold once the transaction landed.
        held = dict(known)
        for key in gone:
            held.pop(key, None)
        for key, ban in fresh:
            held[key] = ban.expires_at
        steps: list[BanStep] = []
        if gone:
            guarded = {subnet for subnet, _ in held}
            unguard = [
                BanElement(net, "manual") for s, net in gone_subnets.items() if s not in guarded
            ]
            steps.append(
                BanStep("delete", [BanElement(gone_subnets[s], j) for s, j in gone], unguard)
            )
            # Subnets still banned by another jail keep their guard.
            kept = [net for s, net in gone_subnets.items() if s in guarded]
            if kept:
                steps.append(BanStep("add", [], guard_elements(kept, held, now)))
        if new:
            # Usually each new ban is its subnet's first: the guard then
            # holds the same elements (guard=None: planned once).
            guard = None if len(first_guard) == len(new) else list(first_guard.values())
            steps.append(BanStep("add", new, guard, refresh=False))
        if renewed or regard:
            steps.append(BanStep("add", _elements(renewed, now), guard_elements(regard, held, now)))
        return BanChanges(
            tuple(steps),
            held,
            removed=tuple((gone_subnets[s], j) for s, j in gone),
            added=len(new),
            renewed=len(renewed),
        )
