"""The agent's intrusion prevention part: log sources, readers, recognise, feed, ban.

Follows the configured log files (agent.tail, woken by inotify) and journal sources
(agent.journal, woken by their pipes), recognises failures, feeds the detector and
bans in the kernel at once (through agent.rules), then stores the ban. Each log
source fails alone (agent.health) and is retried with backoff.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

from pbxfw.agent.chunk import Chunk
from pbxfw.agent.health import Health
from pbxfw.agent.inotify import Inotify
from pbxfw.agent.journal import JournalReader, reader_fds
from pbxfw.agent.outbox import Outbox
from pbxfw.agent.rules import Rules
from pbxfw.agent.sources import KIND_JAIL, LOG_SETTINGS, Source, log_sources
from pbxfw.agent.tail import Tailer
from pbxfw.agent.tally import Tally
from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.evidence import BanEvidence
from pbxfw.domain.logsource import is_journal, parse_journal
from pbxfw.ips.detector import Detector, DetectorParams
from pbxfw.ips.events import BanDecision, Failure
from pbxfw.ips.evidence import EvidenceRing
from pbxfw.ips.recognisers import Recogniser
from pbxfw.storage.repository import Store
from pbxfw.usecases.dashboard import record_tallies
from pbxfw.usecases.ips_state import (
    add_ips_counters,
    reading_positions,
    save_log_offsets,
)

__all__ = ["KIND_JAIL", "LOG_SETTINGS", "Ips", "log_sources"]

log = logging.getLogger("pbxfw.agent")

T = TypeVar("T")


class Ips:
    """The log sources, the detector and the counters; bans through ``rules``."""

    def __init__(
        self,
        store: Store,
        rules: Rules,
        health: Health,
        outbox: Outbox,
        *,
        clock: Callable[[], float],
        web_log: str | None,
        extra_sources: list[tuple[str, str]],
        journal_directory: str | None = None,
        node: str = "",
    ) -> None:
        self.store = store
        #: this agent's node: its log positions and counters are that node's rows
        self.node = node
        self.rules = rules
        self.health = health
        #: the spool and the store writes of the bans decided here
        self.outbox = outbox
        self.clock = clock
        self.web_log = web_log
        self.extra_sources = extra_sources
        #: journal sources read the journal files of this folder (tests)
        self.journal_directory = journal_directory
        #: the watch on the sources' folders (and the database's), None until made
        self.inotify: Inotify | None = None
        #: path → (inode, offset) read but not yet stored
        self._offsets: dict[str, tuple[int, int]] = {}
        #: journal source → cursor read but not yet stored
        self._cursors: dict[str, str] = {}
        self._sources: dict[str, Source] = {}
        self._source_list: list[tuple[str, str]] | None = None
        self.detector: Detector | None = None
        #: the last failure lines per host, handed to a ban when it is made
        self.evidence = EvidenceRing(1)
        #: (host, jail) → the evidence of a ban decided and not made yet
        self._evidence: dict[tuple[IPAddress, str], BanEvidence] = {}
        self._detector_key: tuple[Any, ...] | None = None
        self._counters: dict[str, dict[str, int]] = {}
        #: failures and bans for the dashboard and the metrics (agent.tally)
        self.tally = Tally()
        self.last_flush = 0.0
        #: told of every batch of new bans (the notifications count them: agent.notifier)
        self.on_bans: Callable[[list[Ban]], None] = _ignore

    def close(self) -> None:
        """Release every reader and the inotify watch (never raises)."""
        for source in self._sources.values():
            _close(source.reader)
        if self.inotify is not None:
            self.inotify.close()

    def unread_bytes(self) -> int:
        """How far behind the log reading is: bytes written to the sources and
        not read yet (agent.tail, agent.journal ``unread_bytes``), summed."""
        return sum(s.reader.unread_bytes() for s in self._sources.values() if s.reader is not None)

    def unread_by_source(self) -> dict[str, int]:
        """Bytes behind per log source (the metrics' ``pbxfw_log_unread_bytes``)."""
        return {
            path: source.reader.unread_bytes()
            for path, source in list(self._sources.items())
            if source.reader is not None
        }

    def forget(self, host: IPAddress, jail: str) -> None:
        """A ban was lifted: the detector forgets the host (``Rules.forget``)."""
        if self.detector is not None:
            self.detector.forget(host, jail)
        self.evidence.forget(host, jail)

    # -- the sources --------------------------------------------------------------
    def setup(self, config: Configuration) -> None:
        """Follow the configured log files (each on its own) and size the detector.

        Cheap when nothing changed, so it runs every tick: a failed setup is
        simply tried again.
        """
        sources = log_sources(config, self.web_log) + self.extra_sources
        if sources != self._source_list:
            nothing: dict[str, tuple[int, int] | str] = {}
            offsets = self._stored(lambda: reading_positions(self.store, self.node), nothing)
            names = {getattr(config.settings, key): key for key in LOG_SETTINGS}
            following: dict[str, Source] = {}
            for path, kind in sources:
                old = self._sources.get(path)
                if old is not None and old.kind == kind:
                    following[path] = old
                    continue
                jail = KIND_JAIL.get(kind, kind)
                following[path] = Source(path, kind, jail, names.get(path), offsets.get(path))
            for path, gone in self._sources.items():
                if following.get(path) is not gone:
                    _close(gone.reader)
            self._sources = following
            self._source_list = sources
            self.health.track((s.path, s.jail) for s in following.values())
            for source in following.values():
                if source.reader is None:
                    self._run_source(source, partial(self._open, source))
            self._watch()
            log.info(
                "following %d log files: %s",
                len(sources),
                ", ".join(p if p.isprintable() else repr(p) for p, _ in sources),
            )
        elif self.inotify is None and self.health.due("agent:inotify"):
            self._watch()
        s = config.settings
        key = (s.ips_maxretry, s.ips_findtime, s.ips_bantime, s.ips_bantime_max)
        if key != self._detector_key:
            detector = Detector(DetectorParams.from_settings(s), self.rules.whitelisted)
            # Spooled bans the store lacks count too: a restart during an
            # outage re-reads the lines that made them and must not ban again.
            for ban in self.rules.with_unsaved(self._stored(self.rules.bans.active, [])):
                if ban.jail in ("recidive", "manual"):
                    continue
                detector.remember_offence(
                    ban.subnet.network_address,
                    ban.jail,
                    datetime.fromtimestamp(ban.created_at, UTC),
                    until=datetime.fromtimestamp(ban.expires_at, UTC),
                )
            self.detector, self._detector_key = detector, key
            self.evidence = EvidenceRing(s.ips_maxretry)

    def _stored(self, read: Callable[[], T], default: T) -> T:
        """``read()`` from the store; ``default`` when it fails while the
        agent follows its kept configuration (started during an outage:
        the logs are then read from their start, within ``ips_findtime``)."""
        try:
            return read()
        except Exception:
            if not self.rules.from_cache:
                raise
            return default

    def _database_folder(self) -> list[str]:
        """The SQLite file's folder: a write there (``bans import``, ``bans
        rm``, an apply) wakes the agent at once instead of at its next
        ``revision_interval``. Nothing for a server database."""
        url = self.store.engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return []
        return [os.path.dirname(os.path.abspath(url.database))]

    def _watch(self) -> None:
        """(Re)create the inotify watch on the folders of every source."""
        if self.inotify is not None:
            self.inotify.close()
            self.inotify = None
        files = [p for p in self._sources if not is_journal(p)]
        folders = {os.path.dirname(os.path.abspath(p)) for p in files}
        folders.update(self._database_folder())

        def create() -> None:
            self.inotify = Inotify(sorted(folders))

        self.health.run("agent:inotify", create, force=True)

    def wait(self, interval: float, extra: Sequence[int] = ()) -> bool:
        """Sleep until a watched folder changes, a journal source has new
        entries, an ``extra`` descriptor is readable (the database's
        notifications), or ``interval`` passes; False when there is no watch
        to wait on (the caller sleeps instead)."""
        if self.inotify is None:
            return False
        journals = [s.reader for s in self._sources.values() if isinstance(s.reader, JournalReader)]
        try:
            if journals or extra:
                self.inotify.wait(interval, [*reader_fds(journals), *extra])
            else:
                self.inotify.wait(interval)
            return True
        except Exception as exc:
            self.health.failed("agent:inotify", exc)
            broken, self.inotify = self.inotify, None  # made again when due
            with contextlib.suppress(Exception):
                broken.close()
            return False

    def _open(self, source: Source) -> None:
        if is_journal(source.path):
            config = self.rules.config  # no cursor: start at the window, not the journal's start
            since = self.clock() - config.settings.ips_findtime if config else None
            cursor = source.resume if isinstance(source.resume, str) else None
            source.reader = JournalReader(
                parse_journal(source.path), source.kind, cursor, since, self.journal_directory
            )
        else:
            resume = {source.path: source.resume} if isinstance(source.resume, tuple) else {}
            source.reader = Tailer.create([(source.path, source.kind)], resume)
        source.recogniser = Recogniser(source.kind, file=source.path, reference=self._now())

    def _now(self) -> datetime:
        """The injected clock as a date: the reference year of syslog timestamps."""
        return datetime.fromtimestamp(self.clock(), UTC)

    def _run_source(self, source: Source, action: Callable[[], object]) -> bool:
        return self.health.run(source.path, action, jail=source.jail, hint=source.hint)

    # -- lines → bans ---------------------------------------------------------------
    def logs(self) -> None:
        """Read every source that is due; ban; store the bans and the offsets."""
        config = self.rules.config
        if self.detector is None or config is None:
            return
        if self.inotify is not None:
            self.health.run("agent:inotify", self.inotify.rewatch)
        horizon = self.clock() - config.settings.ips_findtime
        decisions: list[BanDecision] = []
        for source in list(self._sources.values()):
            self._run_source(source, partial(self._read, source, horizon, decisions))
        if decisions and config.settings.ips_enabled:
            self._ban(decisions)
        self._evidence.clear()  # what the switch left unmade keeps nothing
        outbox = self.outbox
        if outbox.due:
            if self.health.run("agent:ban-store", outbox.save):
                self.health.run("agent:spool", outbox.acknowledge)
        else:
            self.health.succeeded("agent:ban-store")  # nothing left to store
        if outbox.unspooled:  # what the database did not take
            self.health.run("agent:spool", outbox.write_spool)
        # Offsets move past lines only once their bans are stored: a restart
        # reads the lines again and bans again rather than forgetting a ban.
        if (self._offsets or self._cursors) and not self.rules.unsaved:
            self.health.run("agent:offsets", self._save_offsets)

    def _read(self, source: Source, horizon: float, decisions: list[BanDecision]) -> None:
        """New lines of one source → ``decisions`` (appended as they come, so
        what was decided before a failure is kept)."""
        if source.reader is None or source.recogniser is None:
            self._open(source)
        assert source.reader is not None
        for chunk in source.reader.poll():
            # Read is read: a chunk the recogniser fails on is not read again.
            if chunk.cursor is not None:
                self._cursors[chunk.path] = chunk.cursor
            else:
                self._offsets[chunk.path] = (chunk.inode, chunk.offset)
            self._recognise(source, chunk, horizon, decisions)

    def _save_offsets(self) -> None:
        now = self.clock()
        pending, cursors = dict(self._offsets), dict(self._cursors)
        save_log_offsets(self.store, pending, now, cursors, node=self.node)
        for path, value in pending.items():
            if self._offsets.get(path) == value:
                del self._offsets[path]
        for path, cursor in cursors.items():
            if self._cursors.get(path) == cursor:
                del self._cursors[path]

    def _recognise(
        self, source: Source, chunk: Chunk, horizon: float, decisions: list[BanDecision]
    ) -> None:
        assert self.detector is not None and source.recogniser is not None
        recogniser = source.recogniser
        recogniser.reference = self._now()
        # Lines are counted under the jail that reads the file (AMI failures
        # come from the same Asterisk files and are counted as lines there).
        counters = self._counter(KIND_JAIL.get(chunk.kind, chunk.kind))
        counters["lines"] += chunk.text.count("\n")
        detector, evidence = self.detector, self.evidence
        lines: list[str] | None = None  # the chunk's lines, split once if a failure counts
        for failure in recogniser.scan_text(chunk.text, chunk.first_line):
            when = failure.time.timestamp()
            if when < horizon:
                continue  # backlog older than the detection window
            counted = detector.counted
            made = self._feed(failure)
            if detector.counted != counted:
                if lines is None:
                    lines = chunk.text.split("\n")
                index = failure.line - chunk.first_line
                text = lines[index] if 0 <= index < len(lines) else ""
                evidence.add(
                    failure.jail,
                    failure.host,
                    failure.file,
                    failure.line,
                    text,
                    when,
                    failure.event,
                )
            if made:
                self._evidence.update(evidence.take_for(made, detector.params))
                decisions += made

    def _feed(self, failure: Failure) -> list[BanDecision]:
        assert self.detector is not None
        counters = self._counter(failure.jail)
        if self.rules.whitelisted(failure.host):
            counters["whitelisted"] += 1
            return []
        counters["failures"] += 1
        self.tally.add(failure)
        return self.detector.feed(failure)

    def _ban(self, decisions: list[BanDecision]) -> None:
        """Ban in the kernel at once, then store the bans, and spool those
        the store did not take; each step on its own (agent.outbox).

        A failed kernel update is completed by the next ban-set sync; a
        failed store keeps the bans in ``rules.unsaved`` and the spool
        (retried with backoff).
        """
        now = self.clock()
        # Stored with this node and its site: the origin of a shared ban.
        here = self.rules.receiver
        taken = self._evidence
        bans = [
            Ban.from_decision(d, now, here.node, here.site, taken.pop((d.host, d.jail), None))
            for d in decisions
        ]
        self.ban_now(bans, now)

    def ban_now(self, bans: list[Ban], now: float) -> None:
        """The steps of :meth:`_ban` for bans made already (also the
        fingerprint part's, agent.fingerprint)."""
        rules = self.rules
        self.outbox.add(bans)
        self.tally.banned(bans)
        # Kernel first: the drop is what matters; the record follows.
        reload = False

        def add() -> None:
            nonlocal reload
            reload = not rules.add_new(bans, now)

        if not self.health.run("agent:new-bans", add, force=True) or reload:
            rules.bans_dirty = True  # the next sync adds what the kernel lacks
        outbox = self.outbox
        if self.health.run("agent:ban-store", outbox.save, force=True):
            self.health.run("agent:spool", outbox.acknowledge, force=True)
        if outbox.unspooled:  # the store failed: the spool keeps them
            self.health.run("agent:spool", outbox.write_spool, force=True)
        if reload:
            rules.stale = True
            self.health.run("agent:rules", rules.enforce, force=True)
        self.on_bans(bans)
        for ban in bans:
            log.warning(
                "banned %s (jail %s, %d s): %s",
                ban.address_text(),
                ban.jail,
                ban.remaining(now),
                ban.reason,
            )

    def _counter(self, jail: str) -> dict[str, int]:
        return self._counters.setdefault(jail, {"lines": 0, "failures": 0, "whitelisted": 0})

    def flush(self) -> None:
        """Store the counters gathered since the last flush, and the
        dashboard's tallies (a failed store keeps them for the next flush)."""
        self.last_flush = now = self.clock()
        pending = {j: c for j, c in self._counters.items() if any(c.values())}
        if pending:
            add_ips_counters(self.store, pending, node=self.node)
            self._counters = {}
        if self.tally:
            tallies = self.tally.take()
            try:
                record_tallies(self.store, self.node, tallies, now)
            except Exception:
                self.tally.restore(tallies)
                raise


def _ignore(_bans: list[Ban]) -> None:
    pass


def _close(reader: Tailer | JournalReader | None) -> None:
    """Release the descriptors (or the process) a reader holds (never raises: the loop goes on)."""
    if reader is not None:
        try:
            reader.close()
        except OSError as exc:
            log.debug("closing a log reader: %s", exc)
