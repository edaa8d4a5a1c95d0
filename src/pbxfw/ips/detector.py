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
* **Count.** A failure with ``count`` n (a syslog ``message repeated n
  times`` line) is n failures at its time (at most ``maxretry`` of them are
  kept: more could only reach the same ban).
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
from collections.abc import Callable
from datetime import datetime

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.jails import DERIVED_JAILS, JAIL_SCOPES, RECIDIVE_JAIL
from pbxfw.ips.detector_params import (
    DEDUP_SECONDS,
    DEFAULT_MAX_OFFENDERS,
    DEFAULT_MAX_TRACKED,
    RECIDIVE_BANTIME,
    RECIDIVE_FINDTIME,
    RECIDIVE_MAXRETRY,
    DetectorParams,
    DetectorStats,
    JailCounters,
    never_banned,
)
from pbxfw.ips.detector_state import (
    MIN_SWEEP,
    NEVER,
    Dedup,
    add_times,
    at,
    epoch,
    host_key,
    record_offence,
    sweep_records,
    sweep_tracks,
)
from pbxfw.ips.events import BanDecision, Failure

# Indexes into a jail's counter list (a list is faster to bump than a dict).
_FAILURES, _BANS, _WHITELISTED, _DUPLICATES, _WHILE_BANNED = range(5)

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


class Detector:
    """Counts failures per (jail, host) and decides bans; see the module doc.

    ``whitelist(host)`` is asked once per failure; True means never count it
    (loopback, own addresses, never-block networks, ``ips_whitelist``).
    Not thread-safe: feed it from one thread.
    """

    __slots__ = (
        "_clock",
        "_counters",
        "_dedup",
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
        "counted",
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
        self._jail_clock: list[int] = [NEVER] * len(self._jail_names)
        self._clock = NEVER
        # (jail, host) → failure times in the window, ascending. A host with
        # one failure (most of a scan) stores a bare int, saving a list. The
        # dict's order is least recently active first: every touch re-inserts.
        self._tracks: dict[int, int | list[int]] = {}
        self._sweep_at = min(MIN_SWEEP, params.max_tracked)
        # (jail, host) → (banned_until, offence times…ascending). For the
        # recidive jail the times are the host's recent bans in any jail.
        # Tuples, rebuilt on the (rare) ban path, are a third smaller than
        # lists, which matters when a flood gets a million sources banned.
        self._records: dict[int, tuple[int, ...]] = {}
        self._offenders_sweep_at = min(MIN_SWEEP, params.max_offenders)
        self._dedup = Dedup()
        self._pruned = 0
        self._evicted = 0
        self._evicted_offenders = 0
        #: failures counted so far (a caller tells a counted one by its change)
        self.counted = 0

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
        t = epoch(failure.time)
        hk = host_key(host)
        key = hk | j
        if t > self._jail_clock[j]:
            self._jail_clock[j] = t
        if t > self._clock:
            self._clock = t
        if failure.key and self._dedup.seen(key, failure.key, t):
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
        params = self._params
        tracks = self._tracks
        old = tracks.pop(key, None)
        times: int | list[int]
        n = failure.count
        counters[_FAILURES] += n
        self.counted += 1
        if n > 1:  # one line standing for n failures ("message repeated n times")
            times = add_times(old, t, min(n, params.maxretry), params.findtime)
            count = len(times)
        elif old is None:
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
            self._pruned, self._evicted, self._sweep_at = sweep_tracks(
                tracks,
                [clock - params.findtime for clock in self._jail_clock],
                params.max_tracked,
                self._pruned,
                self._evicted,
            )
        return []

    def _ban(
        self, failure: Failure, key: int, hk: int, j: int, t: int, first: int, count: int
    ) -> list[BanDecision]:
        params = self._params
        offence = record_offence(self._records, key, t, self._memory, self._steps)
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
                first_failure=failure.time if first == t else at(first),
                reason=(
                    f"{count} {jail} failures within {params.findtime} s "
                    f"(offence {offence}: {seconds} s)"
                ),
                offence=offence,
            )
        ]
        ridx = self._recidive_index
        rkey = hk | ridx
        recent = record_offence(self._records, rkey, t, RECIDIVE_FINDTIME, RECIDIVE_MAXRETRY)
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
                    first_failure=at(first_ban),
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
        t = epoch(time)
        hk = host_key(host)
        if t > self._clock:
            self._clock = t
        ridx = self._recidive_index
        if j == ridx:
            rec = self._records.pop(hk | ridx, None) or (NEVER,)
            # Bans up to the recidive ban were what triggered it.
            self._records[hk | ridx] = (rec[0], *rec[bisect.bisect_right(rec, t, 1) :])
        else:
            record_offence(self._records, hk | j, t, self._memory, self._steps)
            record_offence(self._records, hk | ridx, t, RECIDIVE_FINDTIME, RECIDIVE_MAXRETRY)
        if until is not None:
            rec = self._records[hk | j]
            self._records[hk | j] = (max(rec[0], epoch(until)), *rec[1:])
        if len(self._records) > self._offenders_sweep_at:
            self._sweep_records()

    def forget(self, host: IPAddress, jail: str | None = None) -> None:
        """Drop all state of ``host`` (in ``jail``, or in every jail).

        For a ban the administrator lifted, or a host that became
        whitelisted: its next failures count from zero, without escalation.
        Forgetting every jail also clears the recidive history.
        """
        hk = host_key(host)
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

    def _sweep_records(self) -> None:
        clock = self._clock
        self._evicted_offenders, self._offenders_sweep_at = sweep_records(
            self._records,
            clock,
            clock - self._memory,
            clock - RECIDIVE_FINDTIME,
            self._recidive_index,
            self._params.max_offenders,
            self._evicted_offenders,
        )

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
