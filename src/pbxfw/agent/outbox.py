"""The bans decided here on their way to the database, through the spool.

A ban the detector decides goes, in this order (agent.ips):

1. into the kernel's sets at once (``Rules.add_new``): the drop is what matters;
2. into ``rules.unsaved`` (memory) and the database (``BanService.record``,
   one transaction);
3. only if that write failed, into the spool (agent.spool: a file synced to
   disk): from here on it survives ``kill -9`` and a restart; once a later
   write committed, its spool record is acknowledged.

The healthy path pays no sync of its own: the database's commit is the
durable record, and a ``kill -9`` between the kernel and the commit loses
nothing either, because the log position (file offset, journal cursor) is
stored only after the bans its lines led to: a restarted agent reads those
lines again and decides the ban again.

While the database is unreachable step 3 fails (the store raises
``StorageError`` for any engine: SQLite locked, full or gone, PostgreSQL
stopped or unreachable; any other exception is treated alike): agent.health
logs it once and retries with backoff (1 s … 60 s, the database itself
probed at least every 2 s: agent.health ``DATABASE_PROBE``), and the bans wait in
the spool and in ``rules.unsaved``, which the ban-set sync counts as active
so it never takes them out of the kernel.

At start the spool is replayed (``restore``): its pending bans that have
not lapsed go back into ``rules.unsaved``, so the whole-table load puts them
into the kernel and the next store attempt writes them. Replaying is
idempotent: before the first write after a restart the agent reads the
stored bans, and a spooled ban whose subnet and jail are stored with the
same creation time (written just before a crash, not yet acknowledged) or
with an expiry as late or later (the same attacker banned meanwhile by
another node, the CLI, or a re-read of the log) is acknowledged instead of
written. The store keeps at most one ban per subnet and jail
(``Repository.save_ban`` replaces), so even a ban written twice is one row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from pbxfw.agent.rules import Rules
from pbxfw.agent.spool import BanSpool
from pbxfw.domain.bans import Ban
from pbxfw.kernel.bansets import subnet_key

__all__ = ["Outbox"]

log = logging.getLogger("pbxfw.agent")


class Outbox:
    """The spool and the store writes of the bans in ``rules.unsaved``."""

    def __init__(self, rules: Rules, spool: BanSpool, clock: Callable[[], float]) -> None:
        self.rules = rules
        self.spool = spool
        self.clock = clock
        #: ban → its spool id, for every ban spooled and not acknowledged
        self.spooled: dict[Ban, str] = {}
        #: replayed bans still to be compared with the stored ones
        self._replayed: set[Ban] = set()
        #: the spool was read (``restore`` is retried until it is)
        self.restored = False
        #: bans added and not spooled yet (a failed append keeps them here)
        self._to_spool: list[Ban] = []

    def add(self, bans: list[Ban]) -> None:
        """Bans just decided (and put into the kernel): unsaved until stored,
        to be spooled by ``write_spool``."""
        self.rules.unsaved.extend(bans)
        self._to_spool.extend(bans)

    def restore(self) -> int:
        """Read the spool (once, at start): its live bans become unsaved
        again; lapsed ones are acknowledged. Returns how many were replayed."""
        now = self.clock()
        records = self.spool.load()
        live = [r for r in records if r.ban.expires_at > now]
        known = set(self.rules.unsaved)
        for record in live:
            self.spooled[record.ban] = record.id
            if record.ban not in known:
                self.rules.unsaved.append(record.ban)
        self._replayed = {r.ban for r in live}
        self.restored = True
        lapsed = [r.id for r in records if r.ban.expires_at <= now]
        if lapsed:
            self.spool.acknowledge(lapsed)
        if live:
            log.warning(
                "replaying %d bans spooled in %s while the database could not be written",
                len(live),
                self.spool.path,
            )
        return len(live)

    @property
    def unspooled(self) -> bool:
        """Are there bans added and not spooled yet?"""
        return bool(self._to_spool)

    def write_spool(self) -> None:
        """Spool the bans added since the last successful call that are still
        unsaved (one synced write; none when the database took them all);
        those that lapsed meanwhile are left out."""
        now = self.clock()
        unsaved = set(self.rules.unsaved)
        bans = [
            b
            for b in self._to_spool
            if b in unsaved and b.expires_at > now and b not in self.spooled
        ]
        if not bans:
            self._to_spool = []
            return
        for record in self.spool.append(bans):
            self.spooled[record.ban] = record.id
        self._to_spool = []

    @property
    def due(self) -> bool:
        """Is there anything to store or to acknowledge?"""
        return bool(self.rules.unsaved) or bool(self.spooled)

    def save(self) -> None:
        """Store the unsaved bans (one transaction, with their counters).
        Raises when the store does; ``acknowledge`` follows a success."""
        rules = self.rules
        now = self.clock()
        pending = [b for b in rules.unsaved if b.expires_at > now]
        stored: set[Ban] = set()
        if self._replayed:
            stored = self._already_stored(pending)
            pending = [b for b in pending if b not in stored]
        if pending:
            revision = rules.bans.record(pending)
            # Only our own bump: the kernel's sets hold the stored bans and
            # ours. Any other change meanwhile (bans made or lifted elsewhere
            # during an outage) leaves the revision behind, so the next
            # ban-set sync reads every stored ban.
            if revision == rules.bans_revision + 1:
                rules.bans_revision = revision
        done = set(pending) | stored
        rules.unsaved = [b for b in rules.unsaved if b not in done and b.expires_at > now]
        self._replayed.clear()

    def acknowledge(self) -> None:
        """Acknowledge the spooled bans that are no longer unsaved."""
        if not self.spooled:
            return
        unsaved = set(self.rules.unsaved)
        gone = {ban: ident for ban, ident in self.spooled.items() if ban not in unsaved}
        if gone:
            self.spool.acknowledge(gone.values())
            for ban in gone:
                del self.spooled[ban]

    def _already_stored(self, pending: list[Ban]) -> set[Ban]:
        """The replayed bans in ``pending`` the store holds already (or a
        later-ending ban of the same subnet and jail): not written again."""
        replayed = [b for b in pending if b in self._replayed]
        if not replayed:
            return set()
        stored = {(subnet_key(b.subnet), b.jail): b for b in self.rules.bans.active()}
        found = set()
        for ban in replayed:
            there = stored.get((subnet_key(ban.subnet), ban.jail))
            # A millisecond of tolerance: an engine may keep times less exactly.
            if there is not None and (
                abs(there.created_at - ban.created_at) < 1e-3
                or there.expires_at >= ban.expires_at - 1e-3
            ):
                found.add(ban)
        if found:
            log.info("%d replayed bans were stored already: not written again", len(found))
        return found
