"""Failure isolation for the agent's loop: one failing part never stops the others.

Every part of a tick (one log source, the kernel apply, the ban sets, the
ban store, the PJSIP include, …) runs through ``Health.run``, which catches
any ``Exception``, and then:

- logs the failure **once per episode** (at error level, when the part goes
  from healthy to failing) and once more when it recovers (at info level);
  the attempts in between are logged at debug level only. An unreachable
  database (``StorageError``) fails every part that reads or writes it: it
  is logged at error level by the first part only, and its end (at info
  level) by the first part that reaches it again; the other parts log
  theirs at debug level;
- retries the part with a growing delay: 1 s after the first failure, then
  2, 4, 8 … up to 60 s (``Backoff``); until then ``run`` skips the part;
- records the state (error, since when, how many attempts) for other
  processes: ``persist`` writes the table ``source_status``, but only the
  rows whose state changed since the last write, never on every tick.

Log sources have a row while healthy too (``track``), so ``pbxfw ips status``
lists every file the agent follows; the agent's own parts have a row only
while they fail. Time comes from the ``clock`` given (the agent's), so tests
move it by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from pbxfw.domain.sources import AGENT_PART_PREFIX, SourceStatus
from pbxfw.errors import PbxfwError, StorageError
from pbxfw.storage.repository import Store
from pbxfw.usecases.source_status import record_source_statuses

__all__ = [
    "DATABASE_PROBE",
    "DATABASE_PROBE_SECONDS",
    "PART_LABELS",
    "Backoff",
    "Health",
    "describe",
]

log = logging.getLogger("pbxfw.agent")

#: The part whose attempts tell when an unreachable database answers again:
#: it reads two small values every tick, and while it fails for the database
#: it is retried at least every DATABASE_PROBE_SECONDS (not up to 60 s), so
#: the spooled bans are written and the missed ones taken within seconds.
DATABASE_PROBE = "agent:config"
DATABASE_PROBE_SECONDS = 2.0

#: The agent's own parts and how the log names them.
PART_LABELS = {
    "agent:config": "reading the applied configuration",
    "agent:config-cache": "keeping a copy of the applied configuration",
    "agent:rules": "applying the firewall table",
    "agent:ban-sets": "updating the kernel's ban sets",
    "agent:new-bans": "banning in the kernel",
    "agent:ban-store": "storing new bans",
    "agent:spool": "writing the local ban spool",
    "agent:offsets": "storing how far the logs were read",
    "agent:counters": "storing the IPS counters",
    "agent:ips": "setting up the log sources",
    "agent:logs": "reading the logs",
    "agent:inotify": "watching the log folders",
    "agent:pjsip": "writing the PJSIP include",
    "agent:discover": "reading the Asterisk configuration",
    "agent:host": "reading this host's addresses",
    "agent:whitelist": "reading the never-block list",
    "agent:status": "storing the health of the sources",
    "agent:node": "reporting this node's state",
    "agent:notify": "sending notifications",
    "agent:notify-store": "reading the notification channels, storing their state",
    "agent:drops": "storing the table's drop counters",
}


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before the next attempt after ``failures`` failed ones: doubling from ``first``."""

    first: float = 1.0
    longest: float = 60.0

    def delay(self, failures: int) -> float:
        return min(self.longest, self.first * 2.0 ** max(0, min(failures - 1, 30)))


def describe(exc: BaseException) -> str:
    """One line saying what went wrong, for the log and the status."""
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    if isinstance(exc, ValueError) and "null byte" in str(exc):
        return "the path contains a NUL character"
    if isinstance(exc, PbxfwError):
        text = str(exc)
    elif isinstance(exc, OSError) and exc.strerror:
        text = exc.strerror + (f": {exc.filename}" if exc.filename else "")
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    # One line, bounded: it is shown in a table cell and stored.
    text = " ".join(text.split())
    return text if len(text) <= 500 else text[:499] + "…"


@dataclass
class _Part:
    source: str
    jail: str
    tracked: bool
    since: float
    error: str = ""
    failures: int = 0
    next_try: float = 0.0
    updated_at: float = 0.0
    #: failing because the database cannot be reached
    storage: bool = False

    def status(self) -> SourceStatus:
        return SourceStatus(
            self.source, self.jail, self.error, self.since, self.failures, self.updated_at
        )


class Health:
    """The state of every part of the agent's loop; see the module docstring."""

    def __init__(
        self, clock: Callable[[], float], backoff: Backoff | None = None, *, node: str = ""
    ) -> None:
        self.clock = clock
        #: the node whose ``source_status`` rows ``persist`` writes (migration 0009)
        self.node = node
        self.backoff = backoff or Backoff()
        self._parts: dict[str, _Part] = {}
        #: source → the status to write (None: delete its row)
        self._dirty: dict[str, SourceStatus | None] = {}
        #: the first write replaces whatever an earlier run of the agent left
        self._reset = True
        self._status = _Part("agent:status", "", tracked=False, since=0.0)
        #: an unreachable database was logged and its end not yet
        self._database_down = False

    # -- which sources exist ----------------------------------------------------------
    def track(self, sources: Iterable[tuple[str, str]]) -> None:
        """Follow exactly these ``(source, jail)`` log sources from now on.

        New ones get a healthy row; those no longer followed lose theirs.
        """
        now = self.clock()
        wanted = dict(sources)
        for name, part in list(self._parts.items()):
            if part.tracked and name not in wanted:
                if part.error:
                    log.info("%s: no longer followed (it was failing)", self.label(part))
                del self._parts[name]
                self._dirty[name] = None
        for name, jail in wanted.items():
            old = self._parts.get(name)
            if old is not None and old.tracked and old.jail == jail:
                continue  # followed already: its state goes on
            part = _Part(name, jail, tracked=True, since=now, updated_at=now)
            self._parts[name] = part
            self._dirty[name] = part.status()

    # -- running a part ---------------------------------------------------------------
    def due(self, source: str) -> bool:
        """May ``source`` run now (healthy, or its next attempt has come)?"""
        part = self._parts.get(source)
        return part is None or not part.error or self.clock() >= part.next_try

    def run(
        self,
        source: str,
        action: Callable[[], object],
        *,
        jail: str = "",
        hint: str = "",
        force: bool = False,
    ) -> bool:
        """Run ``action`` as ``source``; True when it ran and succeeded.

        Skipped (False) while ``source`` waits for its next attempt, unless
        ``force`` (a new ban is worth an attempt at once). Any ``Exception``
        is recorded as a failure and never propagates.
        """
        if not force and not self.due(source):
            return False
        try:
            action()
        except Exception as exc:
            self.failed(source, exc, jail=jail, hint=hint)
            return False
        self.succeeded(source)
        return True

    def failed(self, source: str, exc: BaseException, *, jail: str = "", hint: str = "") -> None:
        """Record a failed attempt of ``source`` (logged only when an episode starts)."""
        now = self.clock()
        error = describe(exc) + (f" ({hint})" if hint else "")
        part = self._parts.get(source)
        if part is None:
            part = self._parts[source] = _Part(source, jail, tracked=False, since=now)
        starting = not part.error
        if starting:
            part.since = now
            part.failures = 0
        part.failures += 1
        delay = self.backoff.delay(part.failures)
        part.storage = isinstance(exc, StorageError)
        if part.storage and source == DATABASE_PROBE:
            delay = min(delay, DATABASE_PROBE_SECONDS)
        part.next_try = now + delay
        if starting:
            # The database's outage is logged once, not once per part.
            level = self._outage_level(part, logging.ERROR)
            log.log(level, "%s: %s; retrying in %g s", self.label(part), error, delay)
            log.debug("%s failed", source, exc_info=exc)
        else:
            log.debug("%s: still failing (%d attempts): %s", source, part.failures, error)
        part.error = error
        part.updated_at = now
        self._dirty[source] = part.status()

    def succeeded(self, source: str) -> None:
        """Record a successful run of ``source``; logs the end of an episode."""
        part = self._parts.get(source)
        if part is None or not part.error:
            return
        now = self.clock()
        level = self._recovery_level(part)
        log.log(
            level,
            "%s: recovered after %d failed attempts over %.0f s",
            self.label(part),
            part.failures,
            now - part.since,
        )
        if part.storage:
            # The database answers again: every part waiting for it is due
            # now, not at the end of its own backoff (up to 60 s).
            for other in (*self._parts.values(), self._status):
                if other.error and other.storage:
                    other.next_try = min(other.next_try, now)
        if part.tracked:
            part.error, part.failures, part.since, part.updated_at = "", 0, now, now
            self._dirty[source] = part.status()
        else:
            del self._parts[source]
            self._dirty[source] = None

    def _outage_level(self, part: _Part, level: int) -> int:
        """The level of a failure's first message: an unreachable database is
        logged at ``level`` by the first part it fails, at debug by the others."""
        if not part.storage:
            return level
        if self._database_down:
            return logging.DEBUG
        self._database_down = True
        return level

    def _recovery_level(self, part: _Part) -> int:
        """The level of a recovery's message: the first part that reaches the
        database again logs the end of the outage, the others at debug."""
        if not part.storage:
            return logging.INFO
        if not self._database_down:
            return logging.DEBUG
        self._database_down = False
        return logging.INFO

    # -- what others see --------------------------------------------------------------
    def failing(self) -> list[SourceStatus]:
        return [p.status() for p in self._parts.values() if p.error]

    def statuses(self) -> list[SourceStatus]:
        return [p.status() for p in self._parts.values()]

    def label(self, part: _Part | str) -> str:
        if isinstance(part, str):
            part = self._parts.get(part) or _Part(part, "", tracked=False, since=0.0)
        if part.source.startswith(AGENT_PART_PREFIX):
            return PART_LABELS.get(part.source, part.source)
        return f"log source {part.source!r}" + (f" (jail {part.jail})" if part.jail else "")

    def persist(self, store: Store) -> None:
        """Write the rows whose state changed since the last write (one transaction).

        A failed write is kept for the next call (with its own backoff) and
        logged once, like any other part.
        """
        if not self._dirty and not self._reset:
            return
        now = self.clock()
        if self._status.error and now < self._status.next_try:
            return
        dirty, reset = dict(self._dirty), self._reset
        try:
            if reset:
                changed = [p.status() for p in self._parts.values() if p.tracked or p.error]
                record_source_statuses(store, self._mine(changed), forget_all=True, node=self.node)
            else:
                gone = [s for s, v in dirty.items() if v is None]
                changed = [v for v in dirty.values() if v is not None]
                record_source_statuses(store, self._mine(changed), forget=gone, node=self.node)
        except Exception as exc:
            self._status_failed(exc, now)
            return
        for source, value in dirty.items():
            if self._dirty.get(source, value) is value:
                self._dirty.pop(source, None)
        self._reset = self._reset and not reset
        if self._status.error:
            level = self._recovery_level(self._status)
            log.log(level, "%s: recovered", PART_LABELS["agent:status"])
            self._status = _Part("agent:status", "", tracked=False, since=now)

    def _mine(self, statuses: list[SourceStatus]) -> list[SourceStatus]:
        return [replace(s, node=self.node) for s in statuses]

    def _status_failed(self, exc: BaseException, now: float) -> None:
        part = self._status
        if not part.error:
            part.failures = 0
            part.storage = isinstance(exc, StorageError)
            level = self._outage_level(part, logging.ERROR)
            log.log(level, "%s: %s; retrying", PART_LABELS["agent:status"], describe(exc))
        part.failures += 1
        part.error = describe(exc)
        part.next_try = now + self.backoff.delay(part.failures)
