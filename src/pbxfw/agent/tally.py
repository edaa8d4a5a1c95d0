"""What the agent recognised, tallied in memory for the dashboard and the metrics.

``Ips._feed`` calls :meth:`Tally.add` once per failure (three dictionary
increments, a fourth when the failure names the account it tried: nothing
per line, no I/O); ``Ips.flush``, the agent's periodic counter flush (once a
second at most), takes the tallies and adds them to the aggregate rows of
migrations 0016 and 0018 in one transaction (usecases.dashboard
``record_tallies``).
"""

from __future__ import annotations

from collections.abc import Iterable

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.bans import Ban
from pbxfw.ips.events import Failure
from pbxfw.usecases.dashboard import Tallies

__all__ = ["MAX_USERS", "Tally"]

#: The most (hour, jail, account) keys held between two flushes that store
#: them (a scanner's flood of names while the database is away must not
#: grow the agent): a name new past it is not counted.
MAX_USERS = 20_000


class Tally:
    """Failures per hour, per source and day, per jail and event, per hour,
    jail and account tried; bans per jail and origin."""

    __slots__ = ("_bans", "_hours", "_sources", "_totals", "_users")

    def __init__(self) -> None:
        self._hours: dict[tuple[int, str, str], int] = {}
        #: (day, address or its text) → [jail, failures]
        self._sources: dict[tuple[int, IPAddress | str], _Seen] = {}
        self._totals: dict[tuple[str, str], int] = {}
        self._bans: dict[tuple[str, str], int] = {}
        self._users: dict[tuple[int, str, str], int] = {}

    def add(self, failure: Failure) -> None:
        """Count one failure (``failure.count`` of them) at its log time."""
        stamp = int(failure.time.timestamp())
        n, jail, event = failure.count, failure.jail, failure.event
        hour = stamp - stamp % 3600
        key = (hour, jail, event)
        hours = self._hours
        hours[key] = hours.get(key, 0) + n
        user = failure.user
        if user:
            # _user inlined: a call costs as much as the increment.
            ukey = (hour, jail, user)
            users = self._users
            before = users.get(ukey)
            if before is not None:
                users[ukey] = before + n
            elif len(users) < MAX_USERS:
                users[ukey] = n
        totals = self._totals
        pair = (jail, event)
        totals[pair] = totals.get(pair, 0) + n
        source = (stamp - stamp % 86400, failure.host)
        seen = self._sources.get(source)
        if seen is None:
            self._sources[source] = _Seen(jail, n)
        else:
            seen.jail = jail
            seen.failures += n

    def _user(self, key: tuple[int, str, str], n: int) -> None:
        users = self._users
        before = users.get(key)
        if before is not None:
            users[key] = before + n
        elif len(users) < MAX_USERS:
            users[key] = n

    def banned(self, bans: Iterable[Ban]) -> None:
        """Count the bans made here."""
        for ban in bans:
            key = (ban.jail, ban.origin)
            self._bans[key] = self._bans.get(key, 0) + 1

    def __bool__(self) -> bool:
        return bool(self._totals or self._bans or self._users)

    def take(self) -> Tallies:
        """What was counted since the last ``take``; the tally starts again empty."""
        sources: dict[tuple[int, str], tuple[str, int]] = {}
        for (day, host), seen in self._sources.items():
            key = (day, str(host))  # a restored address is already text
            before = sources.get(key)
            sources[key] = (seen.jail, seen.failures + (before[1] if before else 0))
        tallies = Tallies(
            hours=self._hours,
            sources=sources,
            totals=self._totals,
            bans=self._bans,
            users=self._users,
        )
        self._hours, self._sources, self._totals, self._bans = {}, {}, {}, {}
        self._users = {}
        return tallies

    def restore(self, tallies: Tallies) -> None:
        """Put back what a failed flush could not store (it is added to the next)."""
        for key, n in tallies.hours.items():
            self._hours[key] = self._hours.get(key, 0) + n
        for pair, n in tallies.totals.items():
            self._totals[pair] = self._totals.get(pair, 0) + n
        for pair, n in tallies.bans.items():
            self._bans[pair] = self._bans.get(pair, 0) + n
        for key, n in tallies.users.items():
            self._user(key, n)
        for (day, address), (jail, n) in tallies.sources.items():
            source: tuple[int, IPAddress | str] = (day, address)
            seen = self._sources.get(source)
            if seen is None:
                self._sources[source] = _Seen(jail, n)
            else:
                seen.failures += n


class _Seen:
    """One source's day: the jail of its last failure and how many."""

    __slots__ = ("failures", "jail")

    def __init__(self, jail: str, failures: int) -> None:
        self.jail = jail
        self.failures = failures
