"""The agent's rules part: the whole table, its tamper check, the ban sets.

- applies the applied configuration (see usecases.firewall) at start, again
  when its revision changes, and when the ``inet pbxfw`` table is missing or
  was altered by someone else (``table_altered``); rolls the stored
  configuration back after a confirmation window expired;
- makes the kernel's ban sets hold the stored active bans this node
  enforces (agent.receive: ``ips_share``, its own whitelist) whenever
  ``bans_revision`` changes (any node, CLI, REST), each element with its
  remaining timeout, so bans lapse in the kernel even while the agent is
  down: only the bans written since its revision (one netlink batch), or
  all of them after a removal, a failure, and every FULL_SYNC_SECONDS;
- keeps the whitelist (applied and stored configuration, this host's
  addresses) the intrusion prevention part asks.

``Agent`` (agent.daemon) runs each method through ``agent.health``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from pbxfw.agent.bansync import FULL_SYNC_SECONDS, BanSync
from pbxfw.agent.config_cache import CONFIG_CACHE_NAME, read_cached_config, write_cached_config
from pbxfw.agent.health import Health, describe
from pbxfw.agent.receive import Receiver
from pbxfw.compiler import compile_ruleset
from pbxfw.compiler.feeds import FeedSet
from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.nodes import DEFAULT_SITE
from pbxfw.domain.whitelist import Whitelist
from pbxfw.kernel import Backend, BanSets
from pbxfw.kernel.confirm_state import namespace_dir
from pbxfw.storage.repository import Store
from pbxfw.usecases.applied import Revisions, read_revisions
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.config import ConfigService
from pbxfw.usecases.firewall import FirewallService, ban_elements

__all__ = ["FULL_CHECK_SECONDS", "FULL_SYNC_SECONDS", "Rules"]

#: Seconds between full comparisons of the table while the ban sets are large.
FULL_CHECK_SECONDS = 30

log = logging.getLogger("pbxfw.agent")


def _forget_nothing(_host: IPAddress, _jail: str) -> None:
    """The default of ``Rules.forget``: no detector to tell."""


class Rules(BanSync):
    """The kernel table and ban sets the agent keeps equal to the stored state.

    Holds what the other parts share: the applied configuration it follows
    (``config``), what the kernel's ban sets hold (``ban_sets``) and the
    bans made here but not yet stored (``unsaved``).
    """

    def __init__(
        self,
        store: Store,
        backend: Backend,
        health: Health,
        bans: BanService,
        *,
        clock: Callable[[], float],
        own: Callable[[], list[IPAddress]],
        netns: str | None,
        state_dir: str,
        table_interval: float,
        node: str = "",
        site: str = DEFAULT_SITE,
    ) -> None:
        self.backend = backend
        #: this node (its name and site): which shared bans it enforces
        self.receiver = Receiver(node, site)
        self.health = health
        self.bans = bans
        self.clock = clock
        self.netns = netns
        self.table_interval = table_interval
        self.firewall = FirewallService(
            store, state_dir, backend=lambda _ns: self.backend, clock=clock
        )
        self.configs = ConfigService(store)
        #: this host's addresses (never banned), kept by the agent
        self._own = own
        #: told of every ban the ban-set sync removes (the detector's memory)
        self.forget: Callable[[IPAddress, str], None] = _forget_nothing
        #: the applied configuration the agent follows, and its revision
        self.config: Configuration | None = None
        self.loaded_revision: int | None = None
        #: the kernel must get the whole table (config and bans) again
        self.stale = True
        self.applied_revision: int | None = None
        self._structure: str | None = None
        self._chains: str | None = None
        self.last_full_check = 0.0
        self.last_table_check = 0.0
        self.bans_revision = -1
        #: a ban-set update failed, or the reads may have missed something:
        #: compare with every stored ban at the next tick
        self.bans_dirty = False
        self.last_full_sync = 0.0
        #: what the kernel's ban sets hold, and the changes that move them
        self.ban_sets = BanSets()
        #: bans made here and not yet stored (the store failed): kept, retried,
        #: and counted as active, so no ban-set sync removes them meanwhile
        self.unsaved: list[Ban] = []
        self._whitelist: Whitelist | None = None
        self._stored_revision: int | None = None
        #: the revisions this tick's ``load`` read (None: not read; agent.daemon)
        self.revisions: Revisions | None = None
        #: where each configuration read is kept, for a start without the database
        self.cache_path = namespace_dir(state_dir, netns) / CONFIG_CACHE_NAME
        #: following the kept configuration (the database could not be read at start)
        self.from_cache = False
        #: the blocklist feeds' sets and how many entries they hold (agent.feedpart)
        self.feed_sets: Callable[[], Sequence[FeedSet]] = tuple
        self.feed_count: Callable[[], int] = int
        #: whole-table loads: (succeeded, failed, the last one's seconds, it
        #: succeeded): the metrics' pbxfw_applies_total and apply duration
        self.applies: tuple[int, int, float, bool] = (0, 0, 0.0, True)

    @property
    def whitelist(self) -> Whitelist | None:
        """What this node never bans (the receiver checks every ban against it)."""
        return self._whitelist

    @whitelist.setter
    def whitelist(self, whitelist: Whitelist | None) -> None:
        self._whitelist = whitelist
        self.receiver.set_whitelist(whitelist)

    # -- the table ------------------------------------------------------------------
    def load(self, force: bool, check: bool = True) -> bool:
        """Read the applied configuration when it changed (or ``force``);
        True when it was read (the PJSIP include is then due). Without
        ``check`` (no notification said it moved: agent.wake) its revision
        is not even asked.

        Each configuration read is kept in the state folder
        (agent.config_cache); when the database cannot be read and no
        configuration is known yet (a start during an outage), the kept one
        is followed until the database answers (``from_cache``).
        """
        try:
            # The revisions are one small query (the rollbacks to carry with
            # them); the applied configuration itself (10,000 networks: a large
            # document) is parsed only when it changed.
            self.revisions = revisions = read_revisions(self.firewall.store)
            if (
                not force
                and not self.from_cache
                and self.config is not None
                and (not check or revisions.applied == self.loaded_revision)
            ):
                return False
            revision, config = self.firewall.applied_configuration()
        except Exception:
            if self.config is None:
                self._follow_cache()
            raise
        self.config, self.loaded_revision = config, revision
        # From the kept configuration back to the database's: the whole
        # table again, so the kernel holds exactly the stored state.
        self.stale = True
        self.from_cache = False
        self.health.run(
            "agent:config-cache", lambda: write_cached_config(self.cache_path, revision, config)
        )
        return True

    def _follow_cache(self) -> None:
        """Follow the configuration kept in the state folder (never raises).

        The kernel's table, when there is one, is kept as it is (it holds
        the bans of before the restart, which the store cannot be asked
        for); without one (a reboot) it is loaded from the kept
        configuration and the bans not stored yet.
        """
        try:
            cached = read_cached_config(self.cache_path)
            if cached is None:
                return
            revision, config = cached
            whitelist = Whitelist(config, self._own())
            chains = self.backend.chains()
            structure = self.backend.structure() if chains is not None else None
        except Exception as exc:
            log.warning("cannot follow the kept configuration: %s", describe(exc))
            return
        self.config, self.loaded_revision, self.from_cache = config, revision, True
        self.whitelist = whitelist
        if chains is not None:
            self.stale = False
            self._chains, self._structure = chains, structure
            self.applied_revision = revision
            self.last_table_check = self.last_full_check = self.clock()
        log.warning(
            "the database cannot be read: following the configuration revision %s kept in %s (%s)",
            revision,
            self.cache_path,
            "the kernel keeps its table" if chains is not None else "loading it",
        )

    def enforce(self) -> None:
        """Load the whole table when it is due or was altered by someone else."""
        if self.config is None:
            return
        if not self.stale and self.table_altered():
            log.warning("table inet pbxfw is missing or was altered; applying it again")
            self.stale = True
        if self.stale:
            self.apply(self.config, self.loaded_revision)

    def table_altered(self) -> bool:
        """Is the table missing or changed by someone else?

        Every ``table_interval`` the cheap check (the table's chains, a few
        milliseconds); the full comparison of rules and set declarations
        reads every set element back from the kernel (0.4 s with 100,000
        bans), so it runs every ``table_interval`` only while the sets are
        small and every FULL_CHECK_SECONDS otherwise.
        """
        now = self.clock()
        if now - self.last_table_check < self.table_interval:
            return False
        self.last_table_check = now
        if self.backend.chains() != self._chains:
            return True
        small = len(self.ban_sets) + self.feed_count() < 5000
        full_every = self.table_interval if small else FULL_CHECK_SECONDS
        if now - self.last_full_check < full_every:
            return False
        self.last_full_check = now
        return self.backend.structure() != self._structure

    def apply(
        self, config: Configuration, revision: int | None, bans: list[Ban] | None = None
    ) -> None:
        """``_apply``, timed and counted for the metrics (``self.applies``)."""
        ok, failed, _, _ = self.applies
        started = time.perf_counter()
        try:
            self._apply(config, revision, bans)
        except BaseException:
            self.applies = (ok, failed + 1, time.perf_counter() - started, False)
            raise
        self.applies = (ok + 1, failed, time.perf_counter() - started, True)

    def _apply(
        self, config: Configuration, revision: int | None, bans: list[Ban] | None = None
    ) -> None:
        """Load the whole table: ``config`` and the active bans, in one transaction.

        Until it succeeds the agent stays ``stale`` and tries again (with
        backoff); the kernel meanwhile keeps the table it has, bans included.
        When the stored bans cannot be read (the database is unreachable)
        the table is loaded with the bans the kernel held and the unsaved
        ones, so a table deleted during an outage comes back with its bans;
        the ban sets are compared with the store once it answers again.
        """
        self.stale = True
        remembered = False
        if bans is None:
            try:
                delta = self.bans.changed_since(None)
                bans_revision, stored = delta.revision, delta.bans
                self.receiver.set_shares(delta.shares)
            except Exception as exc:
                bans, bans_revision, remembered = self.remembered_bans(), self.bans_revision, True
                log.warning(
                    "cannot read the stored bans (%s); loading the table with the %d bans "
                    "the kernel held and those not stored yet",
                    describe(exc),
                    len(bans),
                )
            else:
                assert stored is not None  # revision None: always read
                bans = self.with_unsaved(stored)
        else:
            bans_revision = self.bans.revision()
        if not remembered:
            bans = self._drop_whitelisted(config, bans)
        elements = ban_elements(bans, self.clock())
        feeds = self.feed_sets()
        # Without feeds the call is the one it always was.
        text = (
            compile_ruleset(config, elements, feeds=feeds)
            if feeds
            else compile_ruleset(config, elements)
        )
        self.backend.apply(text)
        self.ban_sets.loaded(elements, self.clock())
        self.applied_revision = revision
        self.bans_revision = bans_revision
        self.bans_dirty = remembered  # compare with the store when it answers
        if not remembered:
            self.last_full_sync = self.clock()
        self.stale = False
        self.health.succeeded("agent:new-bans")  # the whole table holds every ban
        self._structure = self.backend.structure()
        self._chains = self.backend.chains()
        self.last_full_check = self.clock()
        self.last_table_check = self.clock()
        log.info(
            "applied configuration revision %s%s: %d networks, %d bans",
            "(never applied: stored)" if revision is None else revision,
            f" in netns {self.netns}" if self.netns else "",
            len(config.networks),
            len(elements),
        )

    # -- the whitelist ----------------------------------------------------------------
    def refresh_whitelist(self) -> Whitelist:
        """The applied configuration's whitelist widened by the stored one's:
        marking a network never-block protects it at once, before any apply
        (the bans inside it are lifted in storage at the same moment)."""
        whitelist = Whitelist(self.configs.configuration(), self._own())
        if self.config is not None:
            whitelist = whitelist.including(Whitelist(self.config))
        self.whitelist = whitelist
        return whitelist

    def follow_stored_revision(self) -> None:
        """Refresh the whitelist when the stored configuration changed."""
        stored = self.firewall.stored_revision()
        if stored != self._stored_revision:
            self.refresh_whitelist()
            self._stored_revision = stored

    def whitelisted(self, address: IPAddress) -> bool:
        return self.whitelist is not None and self.whitelist.covers(address)

    def _drop_whitelisted(self, config: Configuration, bans: list[Ban]) -> list[Ban]:
        """The bans this node enforces (agent.receive): bans being restored
        are checked against the whitelist too (this host's addresses may
        have changed). Those it covers are lifted in the store when they are
        its own or an administrator's (``Receiver.owns``); another node's
        stay stored (they are enforced elsewhere) and are only left out here."""
        self.config = config
        self.refresh_whitelist()
        selection = self.receiver.select(bans)
        if not selection.whitelisted:
            return selection.enforced
        lifted = [b for b, _ in selection.whitelisted if self.receiver.owns(b)]
        if lifted:
            self.bans.lift(lifted)
            self.unsaved = [b for b in self.unsaved if b not in lifted]
        for ban, why in selection.whitelisted:
            log.warning(
                "%s the ban of %s: %s",
                "lifted" if self.receiver.owns(ban) else "not enforcing here",
                ban.address_text(),
                why,
            )
        return selection.enforced
