"""The detector's compact state: one int per (jail, host), the failure times
and ban records kept under it, and the sweeps that keep both bounded.

Functions over the dicts :class:`~pbxfw.ips.detector.Detector` holds.
"""

from __future__ import annotations

import bisect
import ipaddress
from datetime import UTC, datetime
from itertools import islice

from pbxfw.domain.addresses import IPAddress
from pbxfw.ips.detector_params import DEDUP_SECONDS

__all__ = [
    "DEDUP_SECONDS",
    "JAIL_MASK",
    "MIN_SWEEP",
    "NEVER",
    "Dedup",
    "add_times",
    "at",
    "epoch",
    "host_key",
    "record_offence",
    "sweep_records",
    "sweep_tracks",
]

# A state key packs the host and the jail in one int, which is far smaller
# than a tuple of objects: address bits, then one bit for IPv6 (so ::a.b.c.d
# and a.b.c.d differ), then 8 bits of jail index.
_JAIL_BITS = 8
_V6_BIT = 1 << _JAIL_BITS
JAIL_MASK = _V6_BIT - 1
_HOST_SHIFT = _JAIL_BITS + 1
#: A time before every other.
NEVER = -(1 << 62)

# After a cap is hit, evict down to this fraction of it, so that the O(n)
# sweep is paid once per cap/10 insertions rather than on every one.
_LOW_WATER = 0.9
MIN_SWEEP = 4096


def epoch(time: datetime) -> int:
    """``time`` in whole seconds; ValueError if it is naive."""
    if time.tzinfo is None:
        raise ValueError("failure times must be timezone-aware (UTC)")
    return int(time.timestamp())


def host_key(host: IPAddress) -> int:
    """The host part of a state key (``| jail index`` completes it)."""
    if isinstance(host, ipaddress.IPv4Address):
        return int(host) << _HOST_SHIFT
    return (int(host) << _HOST_SHIFT) | _V6_BIT


def at(seconds: int) -> datetime:
    """The UTC datetime of an epoch second."""
    return datetime.fromtimestamp(seconds, UTC)


def _newest(value: int | list[int]) -> int:
    return value if isinstance(value, int) else value[-1]


def add_times(old: int | list[int] | None, t: int, n: int, findtime: int) -> list[int]:
    """A host's failure times (``old``, as kept) with ``n`` more at ``t``, ascending,
    without those more than ``findtime`` before the newest."""
    times = [] if old is None else [old] if isinstance(old, int) else old
    for _ in range(n):
        bisect.insort(times, t)
    stale = bisect.bisect_left(times, times[-1] - findtime)
    if stale:
        del times[:stale]
    return times


def record_offence(
    records: dict[int, tuple[int, ...]], key: int, t: int, memory: int, keep: int
) -> int:
    """Add an offence at ``t`` to ``key``'s record; return how many are remembered.

    A record is (banned_until, offence times… ascending). Offences older than
    ``memory`` before ``t`` are dropped, and only the newest ``keep`` are
    stored: beyond that the answer no longer matters.
    """
    rec = records.pop(key, None)  # re-inserted last: most recently active
    if rec is None:
        records[key] = (NEVER, t)
        return 1
    times = list(rec[1:])
    if not times or t >= times[-1]:
        times.append(t)
    else:
        bisect.insort(times, t)
    times = times[bisect.bisect_left(times, t - memory) :][-keep:]
    records[key] = (rec[0], *times)
    return len(times)


def sweep_tracks(
    tracks: dict[int, int | list[int]], cutoffs: list[int], cap: int, pruned: int, evicted: int
) -> tuple[int, int, int]:
    """Prune counters whose newest failure is before their jail's cutoff; evict
    the least recently active beyond the cap.

    Returns (pruned, evicted) updated and the size at which to sweep next:
    twice what is left, so the O(n) scan costs O(1) per insertion.
    """
    dead = [key for key, value in tracks.items() if _newest(value) < cutoffs[key & JAIL_MASK]]
    for key in dead:
        del tracks[key]
    pruned += len(dead)
    low = int(cap * _LOW_WATER)
    if len(tracks) > low:
        victims = list(islice(tracks, len(tracks) - low))
        for key in victims:
            del tracks[key]
        evicted += len(victims)
    return pruned, evicted, min(cap, max(MIN_SWEEP, 2 * len(tracks)))


def sweep_records(
    records: dict[int, tuple[int, ...]],
    clock: int,
    cut: int,
    recidive_cut: int,
    recidive_index: int,
    cap: int,
    evicted: int,
) -> tuple[int, int]:
    """Drop ban records that are over (at ``clock``) and whose newest offence is
    before ``cut`` (``recidive_cut`` for the recidive jail); evict the least
    recently active beyond the cap. Returns (evicted, size to sweep at next)."""
    dead = [
        key
        for key, rec in records.items()
        if rec[0] <= clock
        and (
            len(rec) == 1 or rec[-1] < (recidive_cut if key & JAIL_MASK == recidive_index else cut)
        )
    ]
    for key in dead:
        del records[key]
    low = int(cap * _LOW_WATER)
    if len(records) > low:
        victims = list(islice(records, len(records) - low))
        for key in victims:
            del records[key]
        evicted += len(victims)
    return evicted, min(cap, max(MIN_SWEEP, 2 * len(records)))


class Dedup:
    """The failure keys seen within :data:`DEDUP_SECONDS`, per state key.

    Two generations of keys, each spanning DEDUP_SECONDS, so expiry is a
    dict swap instead of a scan.
    """

    __slots__ = ("_cur", "_prev", "_start")

    def __init__(self) -> None:
        self._cur: dict[tuple[int, str], int] = {}
        self._prev: dict[tuple[int, str], int] = {}
        self._start = NEVER

    def seen(self, key: int, text: str, t: int) -> bool:
        """Whether (key, text) was seen within DEDUP_SECONDS; record it if not."""
        if t >= self._start + DEDUP_SECONDS:
            # With times in order, an entry is dropped only once it is more
            # than DEDUP_SECONDS older than every later event.
            if t >= self._start + 2 * DEDUP_SECONDS:
                self._prev = {}
            else:
                self._prev = self._cur
            self._cur = {}
            self._start = t
        ident = (key, text)
        seen = self._cur.get(ident)
        if seen is None:
            seen = self._prev.get(ident)
        if seen is not None and abs(t - seen) <= DEDUP_SECONDS:
            return True
        self._cur[ident] = t
        return False
