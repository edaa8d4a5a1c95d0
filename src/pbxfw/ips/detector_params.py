"""The detector's parameters, counters and the addresses it never bans.

See :mod:`pbxfw.ips.detector` for the rules they drive; ``docs/ips-detector.md``
explains them for administrators.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from pbxfw.domain.addresses import IPAddress

if TYPE_CHECKING:
    from pbxfw.domain.settings import Settings

__all__ = [
    "DEDUP_SECONDS",
    "DEFAULT_MAX_OFFENDERS",
    "DEFAULT_MAX_TRACKED",
    "RECIDIVE_BANTIME",
    "RECIDIVE_FINDTIME",
    "RECIDIVE_MAXRETRY",
    "DetectorParams",
    "DetectorStats",
    "JailCounters",
    "never_banned",
]

#: Bans (in any jails) that make a recidivist ...
RECIDIVE_MAXRETRY = 5
#: ... when they fall within this many seconds (a day) ...
RECIDIVE_FINDTIME = 86400
#: ... who is then banned on every port for this long (a week).
RECIDIVE_BANTIME = 7 * 86400
#: Failures with the same key at most this many seconds apart count once.
DEDUP_SECONDS = 2
#: Default cap on (jail, host) failure counters kept at once.
DEFAULT_MAX_TRACKED = 1_000_000
#: Default cap on ban records (a banned host has one per jail plus one for
#: recidive); with DEFAULT_MAX_TRACKED it keeps the whole state under 200 MB.
DEFAULT_MAX_OFFENDERS = 300_000


class JailCounters(TypedDict):
    """Counters of one jail since the detector was made."""

    failures: int
    bans: int
    whitelisted: int
    duplicates: int
    while_banned: int


class DetectorStats(TypedDict):
    """What ``Detector.stats()`` returns (JSON-serialisable)."""

    jails: dict[str, JailCounters]
    tracked: int
    offenders: int
    pruned: int
    evicted: int
    evicted_offenders: int


@dataclass(frozen=True, slots=True)
class DetectorParams:
    """The detector's parameters, in seconds.

    ``offence_memory`` ``None`` means ``2 × bantime_max`` (see the module
    docstring for why). Raises ValueError for values out of range.
    """

    maxretry: int = 10
    findtime: int = 3600
    bantime: int = 86400
    bantime_max: int = 30 * 86400
    offence_memory: int | None = None
    recidive_bantime: int = RECIDIVE_BANTIME
    max_tracked: int = DEFAULT_MAX_TRACKED
    max_offenders: int = DEFAULT_MAX_OFFENDERS

    def __post_init__(self) -> None:
        for name in (
            "maxretry",
            "findtime",
            "bantime",
            "bantime_max",
            "recidive_bantime",
            "max_tracked",
            "max_offenders",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.bantime > self.bantime_max:
            raise ValueError("bantime must not exceed bantime_max")
        if self.offence_memory is not None and self.offence_memory < 1:
            raise ValueError("offence_memory must be at least 1")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        offence_memory: int | None = None,
        recidive_bantime: int = RECIDIVE_BANTIME,
        max_tracked: int = DEFAULT_MAX_TRACKED,
        max_offenders: int = DEFAULT_MAX_OFFENDERS,
    ) -> DetectorParams:
        """``ips_maxretry`` … ``ips_bantime_max`` of ``settings``; the rest as given."""
        return cls(
            maxretry=settings.ips_maxretry,
            findtime=settings.ips_findtime,
            bantime=settings.ips_bantime,
            bantime_max=settings.ips_bantime_max,
            offence_memory=offence_memory,
            recidive_bantime=recidive_bantime,
            max_tracked=max_tracked,
            max_offenders=max_offenders,
        )

    @property
    def memory(self) -> int:
        """Seconds an offence is remembered for escalation."""
        if self.offence_memory is not None:
            return self.offence_memory
        return 2 * self.bantime_max

    @property
    def steps(self) -> int:
        """Offences after which the ban length stops growing (reaches the max)."""
        n = 1
        while self.bantime << (n - 1) < self.bantime_max:
            n += 1
        return n

    def ban_seconds(self, offence: int) -> int:
        """Ban length for the ``offence``-th remembered offence (1-based)."""
        return min(self.bantime << (min(offence, self.steps) - 1), self.bantime_max)


def never_banned(host: IPAddress) -> str | None:
    """Why ``host`` is never banned whatever the logs say, or None.

    Unspecified (``0.0.0.0``, ``::``) and the rest of ``0.0.0.0/8`` ("this
    network", never a source on the wire), the limited broadcast
    ``255.255.255.255``, multicast (``224.0.0.0/4``, ``ff00::/8``),
    link-local (``169.254.0.0/16``, ``fe80::/10``: a neighbour on the PBX's
    own link) and loopback (``127.0.0.0/8``, ``::1``); an IPv4-mapped IPv6
    address is judged as its IPv4 address. Integer tests: this runs for
    every failure.
    """
    n = int(host)
    if isinstance(host, ipaddress.IPv6Address):
        if n >> 32 != 0xFFFF:  # not ::ffff:a.b.c.d
            if n == 0:
                return "unspecified address"
            if n == 1:
                return "loopback address"
            if n >> 120 == 0xFF:
                return "multicast address"
            if n >> 118 == 0x3FA:
                return "link-local address"
            return None
        n &= 0xFFFFFFFF
    top = n >> 24
    if top == 0:
        return "unspecified address" if n == 0 else "this-network address (0.0.0.0/8)"
    if top == 127:
        return "loopback address"
    if n == 0xFFFFFFFF:
        return "broadcast address"
    if top >> 4 == 0xE:
        return "multicast address"
    if n >> 16 == 0xA9FE:
        return "link-local address"
    return None
