"""The detector: turns recognised failures into ban decisions (DESIGN §4).

A pure state machine. It does no I/O and reads no clock: every time it uses
comes from the ``Failure`` events themselves (the log's own timestamps), so a
log can be replayed, tested with a fake timeline, or resumed after a restart
with the same result. ``docs/ips-detector.md`` explains the rules for
administrators; the contract is:

* **Window.** A host is banned in a jail when ``maxretry`` of its failures in
  that jail lie within ``findtime`` seconds, inclusive: failures at ``t`` and
  ``t + findtime`` are in one window, ``t + findtime + 1`` is not. Times are
  whole seconds (sub-second parts are dropped); datetimes must be aware.
* **Whitelist.** A failure whose host the ``whitelist`` callable accepts is
  never counted (only the jail's ``whitelisted`` counter moves).
* **Never a source.** Nor is one whose host cannot be the source of a
  connection or is this host or its link (:func:`never_banned`: unspecified,
  ``0.0.0.0/8``, broadcast, multicast, link-local, loopback, also as
  ``::ffff:`` mapped addresses): a ban of one could only hurt the PBX itself
  or its own network, so the detector refuses it whatever the whitelist says
  (counted as ``whitelisted``).
* **Dedup.** A failure whose non-empty ``key`` equals that of a counted or
  ignored failure from the same host in the same jail at most
  ``DEDUP_SECONDS`` earlier or later is the same attempt written to a second
  log file: it is not counted (``duplicates`` counter).
* **Active bans.** A failure that happens while the host is banned in that
  jail (or by the recidive jail) is not counted (``while_banned`` counter):
  it is a line written before the kernel dropped the source, and counting it
  would escalate the ban for nothing.
* **Reset.** After a ban the host's failures in that jail are forgotten.
* **Escalation.** Offence ``n`` of a host in a jail is banned for
  ``bantime × 2**(n-1)`` seconds, at most ``bantime_max``.
* **Decay.** An offence is remembered for ``offence_memory`` seconds (default
  ``2 × bantime_max``): long enough to outlive the longest ban and a further
  ``bantime_max`` of good conduct, so a host that comes straight back after a
  maximum ban gets the maximum again, and one that stays away starts over.
* **Recidive.** A host banned ``RECIDIVE_MAXRETRY`` (5) times within
  ``RECIDIVE_FINDTIME`` (a day), in any jails, is also banned in the
  ``recidive`` jail (scope ``*``: every port) for ``recidive_bantime``
  (default ``RECIDIVE_BANTIME``, a week); its count of recent bans then
  starts again from zero.
* **Bounds.** State is a few compact dicts of ints. Hosts whose newest failure
  has left the window are pruned in amortised sweeps; at most ``max_tracked``
  (jail, host) counters and ``max_offenders`` ban records are kept, evicting
  the least recently active (counted in ``stats()``) when a cap is reached.

Events should arrive in time order per jail (as a tailed log does); a few
seconds of disorder between files is harmless. Pruning uses the newest time
seen in each jail, so a failure older than the window relative to that time
may not combine with ones already pruned.
"""

from __future__ import annotations

import bisect
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import TYPE_CHECKING, TypedDict

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.jails import DERIVED_JAILS, JAIL_SCOPES, RECIDIVE_JAIL
from pbxfw.ips.events import BanDecision, Failure

if TYPE_CHECKING:
    from pbxfw.domain.settings import Settings

__all__ = [
    "DEDUP_SECONDS",
    "DEFAULT_MAX_OFFENDERS",
    "DEFAULT_MAX_TRACKED",
    "RECIDIVE_BANTIME",
    "RECIDIVE_FINDTIME",
    "RECIDIVE_JAIL",
    "RECIDIVE_MAXRETRY",
    "Detector",
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

# A state key packs the host and the jail in one int, which is far smaller
# than a tuple of objects: address bits, then one bit for IPv6 (so ::a.b.c.d
# and a.b.c.d differ), then 8 bits of jail index.
_JAIL_BITS = 8
_V6_BIT = 1 << _JAIL_BITS
_JAIL_MASK = _V6_BIT - 1
_HOST_SHIFT = _JAIL_BITS + 1
_NEVER = -(1 << 62)

# After a cap is hit, evict down to this fraction of it, so that the O(n)
# sweep is paid once per cap/10 insertions rather than on every one.
_LOW_WATER = 0.9
_MIN_SWEEP = 4096

# Indexes into a jail's counter list (a list is faster to bump than a dict).
_FAILURES, _BANS, _WHITELISTED, _DUPLICATES, _WHILE_BANNED = range(5)


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


def _epoch(time: datetime) -> int:
    if time.tzinfo is None:
        raise ValueError("failure times must be timezone-aware (UTC)")
    return int(time.timestamp())


def _host_key(host: IPAddress) -> int:
    if isinstance(host, ipaddress.IPv4Address):
        return int(host) << _HOST_SHIFT
    return (int(host) << _HOST_SHIFT) | _V6_BIT


def _newest(value: int | list[int]) -> int:
    return value if isinstance(value, int) else value[-1]


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class Detector:
    """Counts failures per (jail, host) and decides bans; see the module doc.

    ``whitelist(host)`` is asked once per failure; True means never count it
    (loopback, own addresses, never-block networks, ``ips_whitelist``).
    Not thread-safe: feed it from one thread.
    """

    __slots__ = (
        "_clock",
        "_counters",
        "_dedup_cur",
        "_dedup_prev",
        "_dedup_start",
        "_evicted",
        "_evicted_offenders",
        "_feed_index",
        "_jail_clock",
        "_jail_index",
        "_jail_names",
        "_memory",
        "_offenders_sweep_at",
        "_params",
        "_pruned",
        "_recidive_index",
        "_records",
        "_steps",
        "_sweep_at",
        "_tracks",
        "_whitelist",
    )

    def __init__(self, params: DetectorParams, whitelist: Callable[[IPAddress], bool]) -> None:
        self._params = params
        self._whitelist = whitelist
        self._memory = params.memory
        self._steps = params.steps
        # Jail name ↔ small index packed into state keys; every known jail
        # gets one up front so stats() lists them all, in a stable order.
        self._jail_names: list[str] = []
        self._jail_index: dict[str, int] = {}
        for name in JAIL_SCOPES:
            self._jail_index[name] = len(self._jail_names)
            self._jail_names.append(name)
        self._recidive_index = self._jail_index[RECIDIVE_JAIL]
        self._feed_index = {
            name: j for name, j in self._jail_index.items() if name not in DERIVED_JAILS
        }
        self._counters: list[list[int]] = [[0] * 5 for _ in self._jail_names]
        self._jail_clock: list[int] = [_NEVER] * len(self._jail_names)
        self._clock = _NEVER
        # (jail, host) → failure times in the window, ascending. A host with
        # one failure (most of a scan) stores a bare int, saving a list. The
        # dict's order is least recently active first: every touch re-inserts.
        self._tracks: dict[int, int | list[int]] = {}
        self._sweep_at = min(_MIN_SWEEP, params.max_tracked)
        # (jail, host) → (banned_until, offence times…ascending). For the
        # recidive jail the times are the host's recent bans in any jail.
        # Tuples, rebuilt on the (rare) ban path, are a third smaller than
        # lists, which matters when a flood gets a million sources banned.
        self._records: dict[int, tuple[int, ...]] = {}
        self._offenders_sweep_at = min(_MIN_SWEEP, params.max_offenders)
        # Two generations of dedup keys, each spanning DEDUP_SECONDS, so
        # expiry is a dict swap instead of a scan.
        self._dedup_cur: dict[tuple[int, str], int] = {}
        self._dedup_prev: dict[tuple[int, str], int] = {}
        self._dedup_start = _NEVER
        self._pruned = 0
        self._evicted = 0
        self._evicted_offenders = 0

    @property
    def params(self) -> DetectorParams:
        """The parameters this detector was made with."""
        return self._params

    # -- feeding -------------------------------------------------------------

    def feed(self, failure: Failure) -> list[BanDecision]:
        """Count ``failure``; return the bans it triggers (usually none).

        At most two decisions: the jail's ban, then a recidive ban when that
        ban is the host's fifth within a day. Raises ValueError for a jail
        not in ``JAIL_SCOPES`` (or a derived one: recidive, manual) and for a
        naive datetime.
        """
        j = self._feed_index.get(failure.jail, -1)
        if j < 0:
            raise ValueError(f"{failure.jail!r} is not a jail that counts failures")
        counters = self._counters[j]
        host = failure.host
        if self._whitelist(host) or never_banned(host) is not None:
            counters[_WHITELISTED] += 1
            return []
        t = _epoch(failure.time)
        hk = _host_key(host)
        key = hk | j
        if t > self._jail_clock[j]:
            self._jail_clock[j] = t
        if t > self._clock:
            self._clock = t
        if failure.key and self._seen(key, failure.key, t):
            counters[_DUPLICATES] += 1
            return []
        records = self._records
        if records:
            rec = records.get(key)
            if rec is not None and t < rec[0]:
                counters[_WHILE_BANNED] += 1
                return []
            rec = records.get(hk | self._recidive_index)
            if rec is not None and t < rec[0]:
                counters[_WHILE_BANNED] += 1
                return []
        counters[_FAILURES] += 1

        params = self._params
        tracks = self._tracks
        old = tracks.pop(key, None)
        times: int | list[int]
        if old is None:
            times = t
            count = 1
        elif isinstance(old, int):
            if t >= old:
                times = t if t - old > params.findtime else [old, t]
            else:
                times = old if old - t > params.findtime else [t, old]
            count = 1 if isinstance(times, int) else 2
        else:
            if t >= old[-1]:
                old.append(t)
            else:
                bisect.insort(old, t)
            # Drop what left the window behind the host's newest failure.
            stale = bisect.bisect_left(old, old[-1] - params.findtime)
            if stale:
                del old[:stale]
            times = old
            count = len(old)
        if count >= params.maxretry:
            # The counter resets: the entry is simply not put back.
            counters[_BANS] += 1
            first = times if isinstance(times, int) else times[0]
            return self._ban(failure, key, hk, j, t, first, count)
        tracks[key] = times
        if len(tracks) > self._sweep_at:
            self._sweep_tracks()
        return []

    def _seen(self, key: int, text: str, t: int) -> bool:
        """Whether (key, text) was seen within DEDUP_SECONDS; record it if not."""
        if t >= self._dedup_start + DEDUP_SECONDS:
            # With times in order, an entry is dropped only once it is more
            # than DEDUP_SECONDS older than every later event.
            if t >= self._dedup_start + 2 * DEDUP_SECONDS:
                self._dedup_prev = {}
            else:
                self._dedup_prev = self._dedup_cur
            self._dedup_cur = {}
            self._dedup_start = t
        ident = (key, text)
        seen = self._dedup_cur.get(ident)
        if seen is None:
            seen = self._dedup_prev.get(ident)
        if seen is not None and abs(t - seen) <= DEDUP_SECONDS:
            return True
        self._dedup_cur[ident] = t
        return False

    def _ban(
        self, failure: Failure, key: int, hk: int, j: int, t: int, first: int, count: int
    ) -> list[BanDecision]:
        params = self._params
        offence = self._record(key, t, self._memory, self._steps)
        seconds = params.ban_seconds(offence)
        rec = self._records[key]
        self._records[key] = (max(rec[0], t + seconds), *rec[1:])
        jail = failure.jail
        decisions = [
            BanDecision(
                host=failure.host,
                jail=jail,
                scope=JAIL_SCOPES[jail],
                time=failure.time,
                seconds=seconds,
                failures=count,
                first_failure=failure.time if first == t else _at(first),
                reason=(
                    f"{count} {jail} failures within {params.findtime} s "
                    f"(offence {offence}: {seconds} s)"
                ),
                offence=offence,
            )
        ]
        ridx = self._recidive_index
        rkey = hk | ridx
        recent = self._record(rkey, t, RECIDIVE_FINDTIME, RECIDIVE_MAXRETRY)
        rrec = self._records[rkey]
        if recent >= RECIDIVE_MAXRETRY and t >= rrec[0]:
            first_ban = rrec[1]
            # The count of recent bans starts again.
            self._records[rkey] = (t + params.recidive_bantime,)
            self._counters[ridx][_BANS] += 1
            decisions.append(
                BanDecision(
                    host=failure.host,
                    jail=RECIDIVE_JAIL,
                    scope=JAIL_SCOPES[RECIDIVE_JAIL],
                    time=failure.time,
                    seconds=params.recidive_bantime,
                    failures=recent,
                    first_failure=_at(first_ban),
                    reason=(
                        f"{recent} bans within {RECIDIVE_FINDTIME} s "
                        f"(latest: {jail}); banned on every port"
                    ),
                    offence=1,
                )
            )
        if len(self._records) > self._offenders_sweep_at:
            self._sweep_records()
        return decisions

    def _record(self, key: int, t: int, memory: int, keep: int) -> int:
        """Add an offence at ``t`` to ``key``'s record; return how many are remembered.

        Offences older than ``memory`` before ``t`` are dropped, and only the
        newest ``keep`` are stored: beyond that the answer no longer matters.
        """
        records = self._records
        rec = records.pop(key, None)  # re-inserted last: most recently active
        if rec is None:
            records[key] = (_NEVER, t)
            return 1
        times = list(rec[1:])
        if not times or t >= times[-1]:
            times.append(t)
        else:
            bisect.insort(times, t)
        times = times[bisect.bisect_left(times, t - memory) :][-keep:]
        records[key] = (rec[0], *times)
        return len(times)

    # -- restoring and forgetting ----------------------------------------------

    def remember_offence(
        self, host: IPAddress, jail: str, time: datetime, *, until: datetime | None = None
    ) -> None:
        """Seed a past ban (e.g. restored from storage at start).

        It counts for escalation in ``jail`` (subject to decay) and, for a
        jail other than recidive, towards the recidive count. With ``until``
        (the ban's expiry) the host's failures in that jail before then are
        not counted; without it the ban is taken to be over. A recidive ban
        resets the host's recent-ban count. Seed in any order.
        """
        j = self._jail_index.get(jail, -1)
        if j < 0:
            raise ValueError(f"unknown jail {jail!r}")
        t = _epoch(time)
        hk = _host_key(host)
        if t > self._clock:
            self._clock = t
        ridx = self._recidive_index
        if j == ridx:
            rec = self._records.pop(hk | ridx, None) or (_NEVER,)
            # Bans up to the recidive ban were what triggered it.
            self._records[hk | ridx] = (rec[0], *rec[bisect.bisect_right(rec, t, 1) :])
        else:
            self._record(hk | j, t, self._memory, self._steps)
            self._record(hk | ridx, t, RECIDIVE_FINDTIME, RECIDIVE_MAXRETRY)
        if until is not None:
            rec = self._records[hk | j]
            self._records[hk | j] = (max(rec[0], _epoch(until)), *rec[1:])
        if len(self._records) > self._offenders_sweep_at:
            self._sweep_records()

    def forget(self, host: IPAddress, jail: str | None = None) -> None:
        """Drop all state of ``host`` (in ``jail``, or in every jail).

        For a ban the administrator lifted, or a host that became
        whitelisted: its next failures count from zero, without escalation.
        Forgetting every jail also clears the recidive history.
        """
        hk = _host_key(host)
        if jail is None:
            indexes = range(len(self._jail_names))
        else:
            j = self._jail_index.get(jail, -1)
            if j < 0:
                raise ValueError(f"unknown jail {jail!r}")
            indexes = range(j, j + 1)
        for j in indexes:
            self._tracks.pop(hk | j, None)
            self._records.pop(hk | j, None)

    # -- bounds ----------------------------------------------------------------

    def _sweep_tracks(self) -> None:
        """Prune counters that left the window; evict LRU beyond the cap.

        Called when the dict outgrows ``_sweep_at``, which then doubles, so
        the O(n) scan costs O(1) per insertion.
        """
        findtime = self._params.findtime
        cutoffs = [clock - findtime for clock in self._jail_clock]
        tracks = self._tracks
        dead = [key for key, value in tracks.items() if _newest(value) < cutoffs[key & _JAIL_MASK]]
        for key in dead:
            del tracks[key]
        self._pruned += len(dead)
        cap = self._params.max_tracked
        low = int(cap * _LOW_WATER)
        if len(tracks) > low:
            victims = list(islice(tracks, len(tracks) - low))
            for key in victims:
                del tracks[key]
            self._evicted += len(victims)
        self._sweep_at = min(cap, max(_MIN_SWEEP, 2 * len(tracks)))

    def _sweep_records(self) -> None:
        """Drop ban records that are over and forgotten; evict LRU beyond the cap."""
        clock = self._clock
        ridx = self._recidive_index
        cut = clock - self._memory
        rcut = clock - RECIDIVE_FINDTIME
        records = self._records
        dead = [
            key
            for key, rec in records.items()
            if rec[0] <= clock
            and (len(rec) == 1 or rec[-1] < (rcut if key & _JAIL_MASK == ridx else cut))
        ]
        for key in dead:
            del records[key]
        cap = self._params.max_offenders
        low = int(cap * _LOW_WATER)
        if len(records) > low:
            victims = list(islice(records, len(records) - low))
            for key in victims:
                del records[key]
            self._evicted_offenders += len(victims)
        self._offenders_sweep_at = min(cap, max(_MIN_SWEEP, 2 * len(records)))

    # -- reporting -------------------------------------------------------------

    def stats(self) -> DetectorStats:
        """Counters per jail, plus the size of the state and what was dropped.

        ``tracked``: (jail, host) failure counters held; ``offenders``: ban
        records held; ``pruned``: counters dropped because their failures
        left the window; ``evicted`` / ``evicted_offenders``: entries dropped
        because a cap was reached (their history is lost).
        """
        jails: dict[str, JailCounters] = {}
        for name, counts in zip(self._jail_names, self._counters, strict=True):
            if name == "manual":
                continue
            jails[name] = JailCounters(
                failures=counts[_FAILURES],
                bans=counts[_BANS],
                whitelisted=counts[_WHITELISTED],
                duplicates=counts[_DUPLICATES],
                while_banned=counts[_WHILE_BANNED],
            )
        return DetectorStats(
            jails=jails,
            tracked=len(self._tracks),
            offenders=len(self._records),
            pruned=self._pruned,
            evicted=self._evicted,
            evicted_offenders=self._evicted_offenders,
        )
