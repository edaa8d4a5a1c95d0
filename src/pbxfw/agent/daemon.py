"""``pbxfw agent``: keeps the kernel equal to the stored state, and bans attackers.

One loop, one thread:

- **rules**: applies the applied configuration (see usecases.firewall) at
  start, again when its revision changes, and when the ``inet pbxfw`` table
  is missing or was altered by someone else; rolls the stored configuration
  back after a confirmation window expired;
- **bans**: makes the kernel's ban sets equal to the stored active bans
  whenever ``bans_revision`` changes (CLI, REST), each element with its
  remaining timeout, so bans lapse in the kernel even while the agent is down;
- **intrusion prevention**: follows the configured log files (inotify),
  recognises failures, feeds the detector and bans in the kernel at once,
  then stores the ban;
- **Asterisk**: rewrites the PJSIP include when the local networks change.

Each of these parts, and each log file, runs on its own (agent.health): an
exception in one is logged once, recorded in ``source_status`` for ``pbxfw
ips status`` and the web page, and retried with backoff, while the others
go on; nothing but a signal ends the loop (docs/security.md, "The agent
keeps running").

Everything it needs comes through the constructor (store, backend, clock),
so tests drive ``tick()`` directly.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from pbxfw.agent.health import Backoff, Health
from pbxfw.agent.tail import Chunk, Inotify, Tailer
from pbxfw.bulk import gc_paused
from pbxfw.compiler import compile_ruleset
from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.whitelist import Whitelist
from pbxfw.errors import KernelError, PbxfwError
from pbxfw.ips.detector import Detector, DetectorParams
from pbxfw.ips.events import BanDecision, Failure
from pbxfw.ips.recognisers import Recogniser
from pbxfw.kernel import Backend, BanSets, NftBackend, commit_changes
from pbxfw.kernel.bansets import subnet_key
from pbxfw.kernel.host import host_addresses
from pbxfw.storage.repository import Store
from pbxfw.usecases.bans import bump_bans_revision
from pbxfw.usecases.config import stored_configuration
from pbxfw.usecases.firewall import FirewallService, ban_elements

__all__ = [
    "FULL_CHECK_SECONDS",
    "Agent",
    "AgentOptions",
    "log_sources",
]

#: Seconds between full comparisons of the table while the ban sets are large.
FULL_CHECK_SECONDS = 30

log = logging.getLogger("pbxfw.agent")

#: settings key of a log path → recogniser kind
LOG_SETTINGS = {
    "log_asterisk_security": "asterisk_security",
    "log_asterisk_messages": "asterisk_messages",
    "log_ssh": "ssh",
    "log_web": "web",
}


KIND_JAIL = {
    "asterisk_security": "asterisk",
    "asterisk_messages": "asterisk",
    "ssh": "ssh",
    "web": "web",
}


@dataclass
class AgentOptions:
    netns: str | None = None
    state_dir: str = "var/state"
    #: pbxfw's own web login failures (written by `pbxfw serve`)
    web_log: str | None = None
    #: seconds between checks of the database revisions
    revision_interval: float = 0.2
    #: seconds between checks that the kernel table is intact
    table_interval: float = 1.0
    discover_asterisk: bool = True
    extra_sources: list[tuple[str, str]] = field(default_factory=list)


def log_sources(config: Configuration, web_log: str | None = None) -> list[tuple[str, str]]:
    """(path, kind) of every log the agent follows, from the settings."""
    sources = [(getattr(config.settings, key), kind) for key, kind in LOG_SETTINGS.items()]
    if web_log:
        sources.append((web_log, "web"))
    seen: set[str] = set()
    unique = []
    for path, kind in sources:
        if path and path not in seen:
            seen.add(path)
            unique.append((path, kind))
    return unique


@dataclass
class _Source:
    """One log file the agent follows, with its own tailer and recogniser.

    Each source has its own ``Tailer`` so that a path that cannot be read
    (a folder, a NUL byte, no permission) fails alone: the others are read
    as usual, and this one is tried again with backoff (see agent.health).
    """

    path: str
    kind: str
    jail: str
    #: the settings key that names the file (None: an option or extra source)
    setting: str | None
    #: where a restarted agent resumes (inode, offset), from the database
    resume: tuple[int, int] | None = None
    tailer: Tailer | None = None
    recogniser: Recogniser | None = None

    @property
    def hint(self) -> str:
        return f"setting {self.setting}" if self.setting else ""


class Agent:
    """The daemon's state and its loop.

    Every part of a tick runs through ``self.health`` (agent.health): an
    exception in one log source, one ban, one apply is logged once, shown in
    ``pbxfw ips status``, and retried with backoff, while the other parts
    keep running. Nothing but a signal ends the loop.
    """

    def __init__(
        self,
        store: Store,
        options: AgentOptions,
        *,
        backend: Backend | None = None,
        clock: Callable[[], float] = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        self.store = store
        self.options = options
        self.clock = clock
        self.backend: Backend = backend or NftBackend(options.netns)
        self.firewall = FirewallService(
            store, options.state_dir, backend=lambda _ns: self.backend, clock=clock
        )
        self.health = Health(clock, backoff)
        self.stop_event = threading.Event()
        #: the applied configuration the agent follows, and its revision
        self._config: Configuration | None = None
        self._loaded_revision: int | None = None
        #: the kernel must get the whole table (config and bans) again
        self._stale = True
        self._pjsip_pending = False
        self._discover_pending = False
        self._applied_revision: int | None = None
        self._structure: str | None = None
        self._chains: str | None = None
        self._last_full_check = 0.0
        self._bans_revision = -1
        #: a ban-set update failed: compare with the stored bans at the next tick
        self._bans_dirty = False
        #: what the kernel's ban sets hold, and the changes that move them
        self._ban_sets = BanSets()
        #: bans made here and not yet stored (the store failed): kept, retried,
        #: and counted as active, so no ban-set sync removes them meanwhile
        self._unsaved: list[Ban] = []
        #: path → (inode, offset) read but not yet stored
        self._offsets: dict[str, tuple[int, int]] = {}
        self._whitelist: Whitelist | None = None
        self._stored_revision: int | None = None
        self._own: list[IPAddress] = []
        self._own_checked = 0.0
        self._inotify: Inotify | None = None
        self._sources: dict[str, _Source] = {}
        self._source_list: list[tuple[str, str]] | None = None
        self._detector: Detector | None = None
        self._detector_key: tuple[Any, ...] | None = None
        self._counters: dict[str, dict[str, int]] = {}
        self._last_table_check = 0.0
        self._last_flush = 0.0
        self._pjsip_text: str | None = None

    # -- the loop ---------------------------------------------------------------
    def run(self) -> None:
        """Run until SIGTERM/SIGINT (or ``stop_event``)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        self.start()
        try:
            while not self.stop_event.is_set():
                self._wait()
                self.tick()
        finally:
            self.health.run("agent:counters", self.flush, force=True)
            self.health.persist(self.store)
            for source in self._sources.values():
                _close(source.tailer)
            if self._inotify is not None:
                self._inotify.close()
            log.info("agent stopped")

    def _wait(self) -> None:
        """Sleep until a watched folder changes or ``revision_interval`` passes."""
        interval = self.options.revision_interval
        if self._inotify is not None:
            try:
                self._inotify.wait(interval)
                return
            except Exception as exc:
                self.health.failed("agent:inotify", exc)
                broken, self._inotify = self._inotify, None  # made again when due
                with contextlib.suppress(Exception):
                    broken.close()
        self.stop_event.wait(interval)

    def start(self) -> None:
        """What happens once: discover the PBX's ports, restore the kernel state."""
        if self.options.discover_asterisk:
            self._discover_pending = not self.health.run("agent:discover", self._discover)
        self.health.run("agent:host", self._refresh_own)
        self.tick(force_rules=True)

    def tick(self, force_rules: bool = False) -> None:
        """One round: rules, bans, logs, counters. Never raises: each part's
        failure is recorded in ``self.health`` and retried with backoff."""
        now = self.clock()
        run = self.health.run
        run("agent:config", lambda: self._load(force_rules))
        run("agent:rules", self._enforce)
        if self._pjsip_pending:
            run("agent:pjsip", self._pjsip)
        if self._discover_pending:
            self._discover_pending = not run("agent:discover", self._discover)
        if self._config is not None:
            config = self._config
            run("agent:ips", lambda: self._setup_ips(config))
        run("agent:ban-sets", self._bans)
        run("agent:logs", self._logs)
        if now - self._last_flush >= 1.0:
            run("agent:counters", self.flush)
        if now - self._own_checked >= 30:
            run("agent:host", self._refresh_own)
        run("agent:whitelist", self._follow_stored_revision)
        self.health.persist(self.store)

    def _refresh_own(self) -> None:
        """This host's addresses (never banned), checked every 30 s."""
        self._own = host_addresses(self.options.netns)
        self._own_checked = self.clock()
        if self._config is not None:
            self._refresh_whitelist()

    def _follow_stored_revision(self) -> None:
        stored = self.firewall.stored_revision()
        if stored != self._stored_revision:
            self._refresh_whitelist()
            self._stored_revision = stored

    # -- rules --------------------------------------------------------------------
    def _load(self, force: bool) -> None:
        """Read the applied configuration when it changed (or ``force``)."""
        self.firewall.reconcile(self.options.netns)
        # The revision is one small query; the applied configuration itself
        # (10,000 networks: a large document) is parsed only when it changed.
        if (
            not force
            and self._config is not None
            and self.firewall.applied_revision() == self._loaded_revision
        ):
            return
        revision, config = self.firewall.applied_configuration()
        self._config, self._loaded_revision = config, revision
        self._stale = True
        self._pjsip_pending = True

    def _enforce(self) -> None:
        """Load the whole table when it is due or was altered by someone else."""
        if self._config is None:
            return
        if not self._stale and self._table_altered():
            log.warning("table inet pbxfw is missing or was altered; applying it again")
            self._stale = True
        if self._stale:
            self._apply(self._config, self._loaded_revision)

    def _pjsip(self) -> None:
        if self._config is not None:
            self._write_pjsip(self._config)
        self._pjsip_pending = False

    def _table_altered(self) -> bool:
        """Is the table missing or changed by someone else?

        Every ``table_interval`` the cheap check (the table's chains, a few
        milliseconds); the full comparison of rules and set declarations
        reads every set element back from the kernel (0.4 s with 100,000
        bans), so it runs every ``table_interval`` only while the sets are
        small and every FULL_CHECK_SECONDS otherwise.
        """
        now = self.clock()
        if now - self._last_table_check < self.options.table_interval:
            return False
        self._last_table_check = now
        if self.backend.chains() != self._chains:
            return True
        full_every = (
            self.options.table_interval if len(self._ban_sets) < 5000 else FULL_CHECK_SECONDS
        )
        if now - self._last_full_check < full_every:
            return False
        self._last_full_check = now
        return self.backend.structure() != self._structure

    def _apply(
        self, config: Configuration, revision: int | None, bans: list[Ban] | None = None
    ) -> None:
        """Load the whole table: ``config`` and the active bans, in one transaction.

        Until it succeeds the agent stays ``_stale`` and tries again (with
        backoff); the kernel meanwhile keeps the table it has, bans included.
        """
        self._stale = True
        with self.store.read() as repo:
            if bans is None:
                bans = self._with_unsaved(repo.bans(now=self.clock()))
            bans_revision = int(repo.get_meta("bans_revision") or "0")
        bans = self._drop_whitelisted(config, bans)
        elements = ban_elements(bans, self.clock())
        text = compile_ruleset(config, elements)
        self.backend.apply(text)
        self._ban_sets.loaded(elements, self.clock())
        self._applied_revision = revision
        self._bans_revision = bans_revision
        self._bans_dirty = False
        self._stale = False
        self.health.succeeded("agent:new-bans")  # the whole table holds every ban
        self._structure = self.backend.structure()
        self._chains = self.backend.chains()
        self._last_full_check = self.clock()
        self._last_table_check = self.clock()
        log.info(
            "applied configuration revision %s%s: %d networks, %d bans",
            "(never applied: stored)" if revision is None else revision,
            f" in netns {self.options.netns}" if self.options.netns else "",
            len(config.networks),
            len(elements),
        )

    def _with_unsaved(self, stored: list[Ban]) -> list[Ban]:
        """``stored`` and the bans made here that the store has not taken yet."""
        if not self._unsaved:
            return stored
        now = self.clock()
        keys = {(subnet_key(b.subnet), b.jail) for b in stored}
        extra = [
            b
            for b in self._unsaved
            if b.expires_at > now and (subnet_key(b.subnet), b.jail) not in keys
        ]
        return stored + extra if extra else stored

    def _refresh_whitelist(self) -> Whitelist:
        """The applied configuration's whitelist widened by the stored one's:
        marking a network never-block protects it at once, before any apply
        (the bans inside it are lifted in storage at the same moment)."""
        with self.store.read() as repo:
            stored = stored_configuration(repo)
        whitelist = Whitelist(stored, self._own)
        if self._config is not None:
            whitelist = whitelist.including(Whitelist(self._config))
        self._whitelist = whitelist
        return whitelist

    def _drop_whitelisted(self, config: Configuration, bans: list[Ban]) -> list[Ban]:
        """Bans being restored are checked against the whitelist too (this
        host's addresses may have changed): those it covers are lifted."""
        self._config = config
        whitelist = self._refresh_whitelist()
        lifted = [b for b in bans if whitelist.reason(b.subnet)]
        if not lifted:
            return bans
        with self.store.write() as repo:
            repo.remove_ban_ids([b.id for b in lifted if b.id is not None])
            bump_bans_revision(repo)
        self._unsaved = [b for b in self._unsaved if b not in lifted]
        for ban in lifted:
            log.warning(
                "lifted the ban of %s: %s", ban.address_text(), whitelist.reason(ban.subnet)
            )
        return [b for b in bans if b not in lifted]

    # -- bans ---------------------------------------------------------------------
    def _bans(self) -> None:
        with self.store.read() as repo:
            revision = int(repo.get_meta("bans_revision") or "0")
            if revision == self._bans_revision and not self._bans_dirty:
                return
            bans = self._with_unsaved(repo.bans(now=self.clock()))
        with gc_paused():  # 100,000 bans: hundreds of thousands of kernel elements
            self._sync_bans(bans)
        self._bans_revision = revision
        self._bans_dirty = False
        # New bans the kernel refused earlier are in it now.
        self.health.succeeded("agent:new-bans")

    def _sync_bans(self, bans: list[Ban]) -> None:
        """Make the kernel's ban sets hold ``bans``: the changes ``BanSets``
        computes, committed as one transaction (plain adds for the new bans:
        100,000 imported addresses are one netlink batch).

        What the agent believes the kernel holds changes only after the
        commit succeeded, so an attempt that fails is made again in full by
        the next one, not forgotten.
        """
        changes = self._ban_sets.sync(bans, self.clock())
        if not changes:
            return
        if self._detector is not None:
            for subnet, jail in changes.removed:
                self._detector.forget(subnet.network_address, jail)
        try:
            commit_changes(self.backend, changes)
        except KernelError as exc:
            # A subnet inside a broader banned one is refused element by
            # element; the whole table, with its sets folded, never is.
            log.warning("ban sets: %s; loading the whole table instead", exc)
            if self._config is not None:
                config, revision = self._config, self._loaded_revision
            else:
                revision, config = self.firewall.applied_configuration()
            self._apply(config, revision, bans)
            return
        self._ban_sets.landed(changes)
        log.info(
            "ban sets: %d added, %d renewed, %d removed",
            changes.added,
            changes.renewed,
            len(changes.removed),
        )

    def _database_folder(self) -> list[str]:
        """The SQLite file's folder: a write there (``bans import``, ``bans
        rm``, an apply) wakes the agent at once instead of at its next
        ``revision_interval``. Nothing for a server database."""
        url = self.store.engine.url
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return []
        return [os.path.dirname(os.path.abspath(url.database))]

    # -- intrusion prevention --------------------------------------------------------
    def _setup_ips(self, config: Configuration) -> None:
        """Follow the configured log files (each on its own) and size the detector.

        Cheap when nothing changed, so it runs every tick: a failed setup is
        simply tried again.
        """
        sources = log_sources(config, self.options.web_log) + self.options.extra_sources
        if sources != self._source_list:
            with self.store.read() as repo:
                offsets = repo.log_offsets()
            names = {getattr(config.settings, key): key for key in LOG_SETTINGS}
            following: dict[str, _Source] = {}
            for path, kind in sources:
                old = self._sources.get(path)
                if old is not None and old.kind == kind:
                    following[path] = old
                    continue
                jail = KIND_JAIL.get(kind, kind)
                following[path] = _Source(path, kind, jail, names.get(path), offsets.get(path))
            for path, gone in self._sources.items():
                if following.get(path) is not gone:
                    _close(gone.tailer)
            self._sources = following
            self._source_list = sources
            self.health.track((s.path, s.jail) for s in following.values())
            for source in following.values():
                if source.tailer is None:
                    self._run_source(source, partial(self._open, source))
            self._watch()
            log.info(
                "following %d log files: %s",
                len(sources),
                ", ".join(p if p.isprintable() else repr(p) for p, _ in sources),
            )
        elif self._inotify is None and self.health.due("agent:inotify"):
            self._watch()
        s = config.settings
        key = (s.ips_maxretry, s.ips_findtime, s.ips_bantime, s.ips_bantime_max)
        if key != self._detector_key:
            detector = Detector(DetectorParams.from_settings(s), self._whitelisted)
            with self.store.read() as repo:
                for ban in repo.bans(now=self.clock()):
                    if ban.jail in ("recidive", "manual"):
                        continue
                    detector.remember_offence(
                        ban.subnet.network_address,
                        ban.jail,
                        datetime.fromtimestamp(ban.created_at, UTC),
                        until=datetime.fromtimestamp(ban.expires_at, UTC),
                    )
            self._detector, self._detector_key = detector, key

    def _watch(self) -> None:
        """(Re)create the inotify watch on the folders of every source."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None
        folders = {os.path.dirname(os.path.abspath(p)) for p in self._sources}
        folders.update(self._database_folder())

        def create() -> None:
            self._inotify = Inotify(sorted(folders))

        self.health.run("agent:inotify", create, force=True)

    def _open(self, source: _Source) -> None:
        resume = {source.path: source.resume} if source.resume is not None else {}
        source.tailer = Tailer.create([(source.path, source.kind)], resume)
        source.recogniser = Recogniser(source.kind, file=source.path, reference=datetime.now(UTC))

    def _run_source(self, source: _Source, action: Callable[[], object]) -> bool:
        return self.health.run(source.path, action, jail=source.jail, hint=source.hint)

    def _whitelisted(self, address: IPAddress) -> bool:
        return self._whitelist is not None and self._whitelist.covers(address)

    def _logs(self) -> None:
        """Read every source that is due; ban; store the bans and the offsets."""
        if self._detector is None or self._config is None:
            return
        if self._inotify is not None:
            self.health.run("agent:inotify", self._inotify.rewatch)
        horizon = self.clock() - self._config.settings.ips_findtime
        decisions: list[BanDecision] = []
        for source in list(self._sources.values()):
            self._run_source(source, partial(self._read, source, horizon, decisions))
        if decisions and self._config.settings.ips_enabled:
            self._ban(decisions)
        if self._unsaved:
            self.health.run("agent:ban-store", self._save_bans)
        else:
            self.health.succeeded("agent:ban-store")  # nothing left to store
        # Offsets move past lines only once their bans are stored: a restart
        # reads the lines again and bans again rather than forgetting a ban.
        if self._offsets and not self._unsaved:
            self.health.run("agent:offsets", self._save_offsets)

    def _read(self, source: _Source, horizon: float, decisions: list[BanDecision]) -> None:
        """New lines of one source → ``decisions`` (appended as they come, so
        what was decided before a failure is kept)."""
        if source.tailer is None or source.recogniser is None:
            self._open(source)
        assert source.tailer is not None
        for chunk in source.tailer.poll():
            # Read is read: a chunk the recogniser fails on is not read again.
            self._offsets[chunk.path] = (chunk.inode, chunk.offset)
            self._recognise(source, chunk, horizon, decisions)

    def _save_offsets(self) -> None:
        now = self.clock()
        pending = dict(self._offsets)
        with self.store.write() as repo:
            for path, (inode, offset) in pending.items():
                repo.save_log_offset(path, inode, offset, now)
        for path, value in pending.items():
            if self._offsets.get(path) == value:
                del self._offsets[path]

    def _recognise(
        self, source: _Source, chunk: Chunk, horizon: float, decisions: list[BanDecision]
    ) -> None:
        assert self._detector is not None and source.recogniser is not None
        recogniser = source.recogniser
        recogniser.reference = datetime.now(UTC)
        # Lines are counted under the jail that reads the file (AMI failures
        # come from the same Asterisk files and are counted as lines there).
        counters = self._counter(KIND_JAIL.get(chunk.kind, chunk.kind))
        counters["lines"] += chunk.text.count("\n")
        for failure in recogniser.scan_text(chunk.text, chunk.first_line):
            if failure.time.timestamp() < horizon:
                continue  # backlog older than the detection window
            decisions += self._feed(failure)

    def _feed(self, failure: Failure) -> list[BanDecision]:
        assert self._detector is not None
        counters = self._counter(failure.jail)
        if self._whitelisted(failure.host):
            counters["whitelisted"] += 1
            return []
        counters["failures"] += 1
        return self._detector.feed(failure)

    def _ban(self, decisions: list[BanDecision]) -> None:
        """Ban in the kernel at once, then store the bans; each step on its own.

        A failed kernel update is completed by the next ban-set sync; a
        failed store keeps the bans in ``_unsaved`` (retried with backoff).
        """
        now = self.clock()
        bans = []
        for d in decisions:
            subnet = ipaddress.ip_network(d.host)
            bans.append(
                Ban(
                    subnet=subnet,
                    jail=d.jail,
                    scope=d.scope,
                    reason=d.reason,
                    created_at=now,
                    expires_at=now + d.seconds,
                    first_failure=d.first_failure.timestamp(),
                    last_failure=d.time.timestamp(),
                    failures=d.failures,
                    offence=d.offence,
                )
            )
        self._unsaved.extend(bans)
        # Kernel first: the drop is what matters; the record follows.
        reload = False

        def add() -> None:
            nonlocal reload
            changes = self._ban_sets.add_new(bans, now)
            try:
                commit_changes(self.backend, changes)
            except KernelError as exc:
                log.warning("ban sets: %s; loading the whole table instead", exc)
                reload = True
                return
            self._ban_sets.landed(changes)

        if not self.health.run("agent:new-bans", add, force=True) or reload:
            self._bans_dirty = True  # the next sync adds what the kernel lacks
        self.health.run("agent:ban-store", self._save_bans, force=True)
        if reload:
            self._stale = True
            self.health.run("agent:rules", self._enforce, force=True)
        for ban in bans:
            log.warning(
                "banned %s (jail %s, %d s): %s",
                ban.address_text(),
                ban.jail,
                ban.remaining(now),
                ban.reason,
            )

    def _save_bans(self) -> None:
        """Store the bans made here (one transaction), with their counters."""
        now = self.clock()
        pending = [b for b in self._unsaved if b.expires_at > now]
        if pending:
            with self.store.write() as repo:
                for ban in pending:
                    repo.save_ban(ban)
                    repo.add_ips_counters(ban.jail, bans=1)
                bump_bans_revision(repo)
                revision = int(repo.get_meta("bans_revision") or "0")
            self._bans_revision = revision
        done = set(map(id, pending))
        self._unsaved = [b for b in self._unsaved if id(b) not in done and b.expires_at > now]

    def _counter(self, jail: str) -> dict[str, int]:
        return self._counters.setdefault(jail, {"lines": 0, "failures": 0, "whitelisted": 0})

    def flush(self) -> None:
        """Store the counters gathered since the last flush."""
        self._last_flush = self.clock()
        pending = {j: c for j, c in self._counters.items() if any(c.values())}
        if not pending:
            return
        with self.store.write() as repo:
            for jail, counts in pending.items():
                repo.add_ips_counters(jail, **counts)
        self._counters = {}

    # -- Asterisk -------------------------------------------------------------------
    def _discover(self) -> None:
        from pbxfw.usecases.config import ConfigService, discover_asterisk

        svc = ConfigService(self.store)
        folder = svc.settings().asterisk_config_dir
        if not folder or not Path(folder).is_dir():
            return
        report = discover_asterisk(
            svc,
            folder,
            "/etc/ssh/sshd_config" if os.path.exists("/etc/ssh/sshd_config") else None,
        )
        for line in report.lines:
            log.info("asterisk discover: %s", line)

    def _write_pjsip(self, config: Configuration) -> None:
        """Rewrite the PJSIP include when its text changed. Every rule of a
        file written as root is checked again at write time (a setting
        stored before the rules, a symlink planted since): a refusal is
        logged and the loop goes on."""
        target = config.settings.pjsip_include_path
        if not target:
            return
        from pbxfw.asterisk.pjsip import reload_pjsip, render_pjsip, write_configured_include

        try:
            text = render_pjsip(config)
            if text == self._pjsip_text:
                return
            changed = write_configured_include(config.settings, text)
            self._pjsip_text = text
            if changed:
                log.info("wrote %s", target)
                if config.settings.pjsip_reload:
                    log.info("%s", reload_pjsip())
        except (PbxfwError, OSError, ValueError) as exc:
            log.error("PJSIP include: %s", exc)


def _close(tailer: Tailer | None) -> None:
    """Release the descriptors a tailer holds (never raises: the loop goes on)."""
    if tailer is not None:
        try:
            tailer.close()
        except OSError as exc:
            log.debug("closing the tailer of %s: %s", [f.path for f in tailer.files], exc)
