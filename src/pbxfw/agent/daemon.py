"""``pbxfw agent``: keeps the kernel equal to the stored state, and bans attackers.

One loop, one thread:

- **rules** (agent.rules): applies the applied configuration (see usecases.firewall) at
  start, again when its revision changes, and when the ``inet pbxfw`` table
  is missing or was altered by someone else; rolls the stored configuration
  back after a confirmation window expired;
- **bans** (agent.rules): makes the kernel's ban sets equal to the stored active bans
  whenever ``bans_revision`` changes (CLI, REST), each element with its
  remaining timeout, so bans lapse in the kernel even while the agent is down;
- **intrusion prevention** (agent.ips): follows the configured log files (inotify),
  recognises failures, feeds the detector and bans in the kernel at once,
  then stores the ban (agent.outbox): while the database cannot be
  written the bans wait in a local spool file, survive a restart, and are
  written when it answers again;
- **Asterisk** (agent.pjsip): rewrites the PJSIP include when the local networks change;
- **scanner fingerprints** (agent.fingerprint): a thread of its own answers the
  NFQUEUE of new SIP flows; the scanners it drops are banned by this loop;
- **node** (agent.node): registers this PBX as a node and reports its state every 5 s
  (``pbxfw node list``).

On PostgreSQL the revisions are not polled: a notification wakes the loop
and names what to read again (agent.wake); polling is the fallback on
SQLite and while the listening connection is lost.

Each of these parts, and each log file, runs on its own (agent.health): an
exception in one is logged once, recorded in ``source_status`` for ``pbxfw
ips status`` and the web page, and retried with backoff, while the others
go on; nothing but a signal ends the loop (docs/security.md, "The agent
keeps running").

Everything it needs comes through the constructor (store, backend, clock),
so tests drive ``tick()`` directly.
"""

from __future__ import annotations

import logging
import select
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pbxfw.agent.bansync import FULL_SYNC_SECONDS
from pbxfw.agent.feedpart import FeedPart
from pbxfw.agent.feeds import feed_max_bytes
from pbxfw.agent.fingerprint import FingerprintGuard
from pbxfw.agent.health import Backoff, Health
from pbxfw.agent.ips import KIND_JAIL, LOG_SETTINGS, Ips, log_sources
from pbxfw.agent.metrics import AgentMetrics
from pbxfw.agent.node import PART as NODE_PART
from pbxfw.agent.node import NodeReporter
from pbxfw.agent.notifier import PART as NOTIFY_PART
from pbxfw.agent.notifier import STORE_PART as NOTIFY_STORE_PART
from pbxfw.agent.notifier import Notifier, NotifyOptions
from pbxfw.agent.outbox import Outbox
from pbxfw.agent.pjsip import Pjsip
from pbxfw.agent.rules import FULL_CHECK_SECONDS, Rules
from pbxfw.agent.spool import SPOOL_NAME, BanSpool
from pbxfw.agent.wake import Wake, listen_enabled
from pbxfw.domain.addresses import IPAddress
from pbxfw.kernel import Backend, NftBackend
from pbxfw.kernel.confirm_state import namespace_dir
from pbxfw.kernel.host import host_addresses
from pbxfw.storage.repository import Store
from pbxfw.usecases.bans import BanService

__all__ = [
    "FULL_CHECK_SECONDS",
    "KIND_JAIL",
    "LOG_SETTINGS",
    "Agent",
    "AgentOptions",
    "log_sources",
]

log = logging.getLogger("pbxfw.agent")


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
    #: journal: sources read the journal files of this folder instead of
    #: the system's journal (tests: files written by systemd-journal-remote)
    journal_directory: str | None = None
    #: this PBX's node name (None: the host name); validated by the caller
    node: str | None = None
    #: PostgreSQL: wake on LISTEN/NOTIFY instead of polling (``PBXFW_LISTEN=0``: poll)
    listen: bool = field(default_factory=lambda: listen_enabled())
    #: the scanner fingerprint check (agent.fingerprint; only with the nft backend)
    fingerprints: bool = True
    #: the notifications' timings and bounds (agent.notifier)
    notify: NotifyOptions = field(default_factory=NotifyOptions)
    #: the largest answer a blocklist feed may give (env ``PBXFW_FEED_MAX_BYTES``)
    feed_max_bytes: int = field(default_factory=lambda: feed_max_bytes())
    #: seconds to connect to a feed's server and between two reads of its answer
    feed_timeout: float = 20.0
    #: serve Prometheus metrics on (host, port) (None: off; agent.metrics)
    metrics: tuple[str, int] | None = None


class Agent:
    """The daemon's loop over its parts: ``rules`` (agent.rules), ``ips``
    (agent.ips) and ``pjsip`` (agent.pjsip).

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
        #: this PBX's node: its report, and the rows it owns (log positions,
        #: source health, counters: migration 0009)
        self.node_name = options.node or socket.gethostname()
        self.health = Health(clock, backoff, node=self.node_name)
        #: the use case that stores the bans decided here (own addresses:
        #: those the agent keeps, never read by the calls it makes)
        self.bans = BanService(
            store, clock=clock, own_addresses=lambda: self._own, node=self.node_name
        )
        self.stop_event = threading.Event()
        self._own: list[IPAddress] = []
        self._own_checked = 0.0
        self.rules = Rules(
            store,
            self.backend,
            self.health,
            self.bans,
            clock=clock,
            own=lambda: self._own,
            netns=options.netns,
            state_dir=options.state_dir,
            table_interval=options.table_interval,
            node=self.node_name,
            site=store.site,
        )
        #: the bans decided here on their way to the database, through a
        #: spool file that survives a restart (agent.outbox, agent.spool)
        spool = BanSpool(namespace_dir(options.state_dir, options.netns) / SPOOL_NAME)
        self.outbox = Outbox(self.rules, spool, clock)
        self.ips = Ips(
            store,
            self.rules,
            self.health,
            self.outbox,
            clock=clock,
            web_log=options.web_log,
            extra_sources=options.extra_sources,
            journal_directory=options.journal_directory,
            node=self.node_name,
        )
        self.rules.forget = self.ips.forget
        #: scanner fingerprints (issue 18): a thread answering the NFQUEUE; its
        #: bans go through the intrusion prevention's ban steps
        self.fingerprint: FingerprintGuard | None = None
        if options.fingerprints and isinstance(self.backend, NftBackend):
            self.fingerprint = FingerprintGuard(
                store,
                exempt=self.rules.whitelisted,
                ban=self.ips.ban_now,
                node=self.node_name,
                site=store.site,
                netns=options.netns,
                clock=clock,
            )
        #: the notifications (agent.notifier): told of new bans, ticked below
        self.notifier = Notifier(
            store,
            self.health,
            clock=clock,
            node=self.node_name,
            state_dir=options.state_dir,
            netns=options.netns,
            options=options.notify,
        )
        self.ips.on_bans = self.notifier.bans
        self.pjsip = Pjsip(store)
        self.wake = Wake(store, self.health, enabled=options.listen)
        rules = self.rules
        self.node = NodeReporter(
            store,
            self.health,
            name=self.node_name,
            site=store.site,
            clock=clock,
            applied_revision=lambda: rules.applied_revision,
            kernel_bans=lambda now: rules.ban_sets.active(now),
            unread_bytes=self.ips.unread_bytes,
        )
        self.firewall = self.rules.firewall
        self.configs = self.rules.configs
        #: blocklist feeds: fetched in a thread of their own (agent.feedpart)
        self.feeds = FeedPart(
            store,
            self.rules,
            self.health,
            node=self.node_name,
            state_dir=options.state_dir,
            netns=options.netns,
            own=lambda: self._own,
            clock=clock,
            max_bytes=options.feed_max_bytes,
            timeout=options.feed_timeout,
        )
        #: the /metrics server and the stored drop counters (agent.metrics)
        self.metrics = AgentMetrics(
            store,
            self.backend,
            node=self.node_name,
            clock=clock,
            held=lambda: rules.ban_sets.snapshot(),
            unread=self.ips.unread_by_source,
            applies=lambda: rules.applies,
        )

    # -- the loop ---------------------------------------------------------------
    def run(self) -> None:
        """Run until SIGTERM/SIGINT (or ``stop_event``)."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop_event.set())
        if self.options.metrics is not None:
            self.metrics.serve(*self.options.metrics)
        self.start()
        try:
            while not self.stop_event.is_set():
                self._wait()
                if self.stop_event.is_set():
                    # The stop signal also reached journalctl (our process group, or
                    # systemd's cgroup): a tick now would record its end as the
                    # journal source failing, a status that outlives the agent.
                    break
                self.tick()
        finally:
            self.health.run("agent:counters", self.flush, force=True)
            self.notifier.close()
            self.health.persist(self.store)
            self.ips.close()
            if self.fingerprint is not None:
                self.fingerprint.close()
            self.feeds.close()
            self.wake.close()
            self.metrics.close()
            log.info("agent stopped")

    def _wait(self) -> None:
        """Sleep until a watched folder changes, a notification arrives, or
        ``revision_interval`` passes."""
        interval = self.options.revision_interval
        fds = self.wake.fds() + ([] if self.fingerprint is None else self.fingerprint.fds())
        if not self.ips.wait(interval, fds):
            if fds:
                select.select(fds, [], [], interval)
            else:
                self.stop_event.wait(interval)
        self.wake.drain()

    def start(self) -> None:
        """What happens once: replay the ban spool, discover the PBX's ports,
        restore the kernel state (the spooled bans included)."""
        self.health.run("agent:spool", self.outbox.restore)
        if self.options.discover_asterisk:
            self.pjsip.discover_pending = not self.health.run("agent:discover", self.pjsip.discover)
        self.health.run("agent:host", self._refresh_own)
        self.tick(force_rules=True)

    def tick(self, force_rules: bool = False) -> None:
        """One round: rules, bans, logs, counters. Never raises: each part's
        failure is recorded in ``self.health`` and retried with backoff."""
        now = self.clock()
        run = self.health.run
        rules, ips, pjsip, wake = self.rules, self.ips, self.pjsip, self.wake
        if not self.outbox.restored:  # the spool could not be read at start
            run("agent:spool", self.outbox.restore)
        wake.keep()
        # What a notification named (or everything, while polling); a read
        # that did not succeed is due again at the next tick.
        config_due = wake.take_config()
        rules.revisions = None  # read by this tick's load, else not known
        if not run("agent:config", lambda: self._load(force_rules, config_due)):
            wake.config = True
        run("agent:rules", rules.enforce)
        if pjsip.pending:
            run("agent:pjsip", lambda: pjsip.refresh(rules.config))
        if pjsip.discover_pending:
            pjsip.discover_pending = not run("agent:discover", pjsip.discover)
        if rules.config is not None:
            config = rules.config
            run("agent:ips", lambda: ips.setup(config))
            if self.fingerprint is not None:
                guard = self.fingerprint
                run("agent:fingerprint", lambda: guard.setup(config))
                run("agent:fingerprint-bans", guard.ban_found)
        # A full read of the bans when the listening connection was made
        # again (a notification may have been missed) and every
        # FULL_SYNC_SECONDS (the fallback of the incremental reads).
        if wake.take_full_bans() or now - rules.last_full_sync >= FULL_SYNC_SECONDS:
            rules.bans_dirty = True
        if (wake.take_bans() or rules.bans_dirty) and not run("agent:ban-sets", self._sync):
            wake.bans = True
        run("agent:logs", ips.logs)
        if rules.config is not None:
            feeds = self.feeds
            if feeds.read_due():
                run("agent:feeds", feeds.read)
            feeds.land()
        if now - ips.last_flush >= 1.0:
            run("agent:counters", self.flush)
        if now - self._own_checked >= 30:
            run("agent:host", self._refresh_own)
        if config_due and not run("agent:whitelist", rules.follow_stored_revision):
            wake.config = True
        if self.node.due(now):
            run(NODE_PART, self.node.report)
        run(NOTIFY_STORE_PART, self.notifier.sync)
        run(NOTIFY_PART, self.notifier.tick)
        if self.metrics.drops_due(now):
            run("agent:drops", self.metrics.store_drops)
        self.metrics.last_tick = now
        self.health.persist(self.store)

    def _load(self, force: bool, check: bool = True) -> None:
        """Read the applied configuration when it changed (``check``: its
        revision may have moved); the PJSIP include follows."""
        if self.rules.load(force, check):
            self.pjsip.pending = True

    def _sync(self) -> None:
        """The ban-set sync, skipped when the ban revision this tick's load
        read with the others has not moved (the sync would read it again
        and find nothing to do: one query less before the logs)."""
        rules = self.rules
        read = rules.revisions
        if read is None or rules.bans_dirty or read.bans != rules.bans_revision:
            rules.sync()

    def _refresh_own(self) -> None:
        """This host's addresses (never banned), checked every 30 s."""
        self._own = host_addresses(self.options.netns)
        self._own_checked = self.clock()
        if self.rules.config is not None:
            self.rules.refresh_whitelist()

    def flush(self) -> None:
        """Store the IPS counters gathered since the last flush."""
        self.ips.flush()
