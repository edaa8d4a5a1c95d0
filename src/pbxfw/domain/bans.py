"""Bans: who is banned, by which jail, for which services, why and until when.

Times are epoch seconds (floats) given by the caller: the domain never reads
a clock. The vocabulary follows CrowdSec's decisions: the *scope* is the set
of services a ban covers, the *jail* is the scenario that made it.
"""

from __future__ import annotations

import ipaddress
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, cast

from pbxfw.domain.addresses import IPAddress, IPNetwork
from pbxfw.domain.decision import ALL_SERVICES, ActiveBan
from pbxfw.domain.evidence import BanEvidence
from pbxfw.domain.setting_rules import MAX_BAN_SECONDS

__all__ = [
    "MANUAL_ORIGIN",
    "Ban",
    "Decided",
    "bounded_expiries",
    "jail_origin",
    "new_ban",
    "scope_from_text",
    "scope_text",
]

#: The origin of an administrator's ban (``bans add``, the web page, REST, ``bans import``).
MANUAL_ORIGIN = "manual"


def jail_origin(jail: str) -> str:
    """The origin of a ban the jail ``jail`` detected: ``jail:<jail>``."""
    return f"jail:{jail}"


class Decided(Protocol):
    """What :meth:`Ban.from_decision` reads of a ban decision (the detector's
    ``pbxfw.ips.events.BanDecision``; a protocol so the domain imports nothing
    from the intrusion prevention)."""

    @property
    def host(self) -> IPAddress: ...
    @property
    def jail(self) -> str: ...
    @property
    def scope(self) -> frozenset[str]: ...
    @property
    def time(self) -> datetime: ...
    @property
    def seconds(self) -> int: ...
    @property
    def failures(self) -> int: ...
    @property
    def first_failure(self) -> datetime: ...
    @property
    def reason(self) -> str: ...
    @property
    def offence(self) -> int: ...


def bounded_expiries(created: Sequence[float], expires: Sequence[float]) -> Sequence[float]:
    """``expires`` with each expiry at most MAX_BAN_SECONDS after its creation.

    A ban stored before lengths were bounded (``1e30`` seconds) reads as
    lasting 10 years from its creation, so listing, showing and compiling it
    never overflow. ``expires`` itself when none is beyond (the usual case,
    checked at C speed: the agent reads 100,000 bans at once).
    """
    if max(map(operator.sub, expires, created), default=0.0) <= MAX_BAN_SECONDS:
        return expires
    return [min(e, c + MAX_BAN_SECONDS) for c, e in zip(created, expires, strict=True)]


def scope_text(scope: frozenset[str]) -> str:
    return ALL_SERVICES if ALL_SERVICES in scope else ",".join(sorted(scope))


def scope_from_text(text: str) -> frozenset[str]:
    return frozenset(part for part in text.split(",") if part)


@dataclass(frozen=True, slots=True)
class Ban:
    """A stored ban. ``expires_at`` is when the kernel element lapses too."""

    subnet: IPNetwork
    jail: str
    scope: frozenset[str]
    reason: str
    created_at: float
    expires_at: float
    first_failure: float = 0.0
    last_failure: float = 0.0
    failures: int = 0
    offence: int = 1
    id: int | None = None
    #: what made it: ``jail:NAME`` (detected) or ``manual`` (an administrator;
    #: DESIGN §7, docs/fleet-bans.md)
    origin: str = MANUAL_ORIGIN
    #: the node that detected it, and that node's site; None: an
    #: administrator's ban, enforced at every node
    node: str | None = None
    site: str | None = None
    #: who made an administrator's ban (``cli:USER``, ``web:ADMIN``,
    #: ``rest:ADMIN``); None for a jail's. Not read with the ban list (the
    #: agent's 100,000-ban read): ``BanService.show`` reads it. Not part of
    #: equality either: the same ban read either way is one ban.
    who: str | None = field(default=None, compare=False)
    #: the lines and rule that made a jail's ban, carried from the agent's
    #: detector to the store (domain.evidence); not part of equality
    evidence: BanEvidence | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_decision(
        cls,
        decision: Decided,
        now: float,
        node: str | None = None,
        site: str | None = None,
        evidence: BanEvidence | None = None,
    ) -> Ban:
        """The ban the detector decided, made at ``now`` (epoch seconds) by
        the node ``node`` of the site ``site``: it lasts ``decision.seconds``
        from ``now``, and keeps the times of the first and last failures,
        their count and the offence number; its origin is ``jail:<jail>``;
        it carries ``evidence`` (the lines that made it) to the store."""
        return cls(
            subnet=ipaddress.ip_network(decision.host),
            jail=decision.jail,
            scope=decision.scope,
            reason=decision.reason,
            created_at=now,
            expires_at=now + decision.seconds,
            first_failure=decision.first_failure.timestamp(),
            last_failure=decision.time.timestamp(),
            failures=decision.failures,
            offence=decision.offence,
            origin=jail_origin(decision.jail),
            node=node,
            site=site,
            evidence=evidence,
        )

    def remaining(self, now: float) -> int:
        """Whole seconds left (0 when expired, at most MAX_BAN_SECONDS); the
        kernel element's timeout."""
        left = self.expires_at - now
        if left > MAX_BAN_SECONDS:  # a clock set back, or a ban from before the bound
            return MAX_BAN_SECONDS
        return max(0, int(left + 0.999))

    def active(self, now: float) -> bool:
        return self.expires_at > now

    def as_active(self) -> ActiveBan:
        return ActiveBan(self.subnet, self.jail, self.scope, self.reason)

    def address_text(self) -> str:
        """The address as an administrator writes it: no /32 or /128 for one host."""
        if self.subnet.prefixlen == self.subnet.max_prefixlen:
            return str(self.subnet.network_address)
        return str(self.subnet)

    def as_json(self, now: float) -> dict[str, object]:
        return {
            "address": self.address_text(),
            "jail": self.jail,
            "scope": sorted(self.scope),
            "reason": self.reason,
            "since": self.created_at,
            "until": self.expires_at,
            "remaining": self.remaining(now),
            "failures": self.failures,
            "offence": self.offence,
            "origin": self.origin,
            "node": self.node,
            "site": self.site,
        }


class _BanFields:
    """:class:`Ban`'s slots without its frozen ``__setattr__`` (the same
    layout, so an instance may change between the two classes): how
    :func:`new_ban` fills a Ban in."""

    __slots__ = Ban.__slots__
    subnet: IPNetwork
    jail: str
    scope: frozenset[str]
    reason: str
    created_at: float
    expires_at: float
    first_failure: float
    last_failure: float
    failures: int
    offence: int
    id: int | None
    origin: str
    node: str | None
    site: str | None
    who: str | None
    evidence: BanEvidence | None


_new = object.__new__


def new_ban(
    subnet: IPNetwork,
    jail: str,
    scope: frozenset[str],
    reason: str,
    created_at: float,
    expires_at: float,
    first_failure: float,
    last_failure: float,
    failures: int,
    offence: int,
    id: int | None,  # the field's name
    origin: str,
    node: str | None,
    site: str | None,
    who: str | None = None,
) -> Ban:
    """``Ban(...)`` with every field given, equal to it in every way (tested)
    and about twice as fast: the frozen dataclass's ``__init__`` makes one
    ``object.__setattr__`` call per field, and the agent reads 100,000 bans
    at once (storage.bans ``bans``; as ips.events ``new_failure``)."""
    fields = _new(_BanFields)
    fields.subnet = subnet
    fields.jail = jail
    fields.scope = scope
    fields.reason = reason
    fields.created_at = created_at
    fields.expires_at = expires_at
    fields.first_failure = first_failure
    fields.last_failure = last_failure
    fields.failures = failures
    fields.offence = offence
    fields.id = id
    fields.origin = origin
    fields.node = node
    fields.site = site
    fields.who = who
    fields.evidence = None
    fields.__class__ = Ban  # type: ignore[assignment]  # same layout
    return cast("Ban", fields)
