"""The agent's ban sets: the kernel's sets kept holding the stored bans this node enforces.

A part of ``agent.rules.Rules`` (a mix-in: the methods work on the Rules'
state). Incremental propagation (docs/fleet-bans.md): a notified
``bans_revision`` makes the agent read only the bans written since the
revision it has (usecases.bans ``changed_since``: one indexed query) and add
them to its kernel in one netlink batch; a removal anywhere (``bans rm``,
a whitelist's lift, an ``ips_share`` change), a failed kernel update, a
reconnection, and every FULL_SYNC_SECONDS make it read every stored ban and
make its sets equal to them instead. Expiry is the kernel's own timeouts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from ipaddress import ip_network
from typing import TYPE_CHECKING

from pbxfw.agent.health import Health
from pbxfw.agent.receive import Receiver
from pbxfw.bulk import gc_paused
from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.bans import Ban
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.domain.sharing import origin_seen_from
from pbxfw.errors import KernelError
from pbxfw.kernel import Backend, BanSets, commit_changes
from pbxfw.kernel.bansets import subnet_key
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.firewall import FirewallService

__all__ = ["FULL_SYNC_SECONDS", "BanSync"]

#: Seconds between full reads of the stored bans (the fallback of the
#: incremental reads: whatever they could have missed is put right).
FULL_SYNC_SECONDS = 300

log = logging.getLogger("pbxfw.agent")


class BanSync:
    """The ban-set methods of ``Rules`` (its attributes, set by its ``__init__``)."""

    backend: Backend
    health: Health
    bans: BanService
    clock: Callable[[], float]
    firewall: FirewallService
    forget: Callable[[IPAddress, str], None]
    config: Configuration | None
    loaded_revision: int | None
    ban_sets: BanSets
    unsaved: list[Ban]
    receiver: Receiver
    bans_revision: int
    bans_dirty: bool
    #: the whole table is loaded at the next tick (agent.rules ``enforce``)
    stale: bool
    last_full_sync: float

    if TYPE_CHECKING:

        def apply(
            self, config: Configuration, revision: int | None, bans: list[Ban] | None = None
        ) -> None: ...

    def remembered_bans(self) -> list[Ban]:
        """The bans the kernel's sets hold (from memory) and the unsaved ones:
        what a table loaded without the store must hold."""
        now = self.clock()
        held = [
            Ban(
                ip_network(subnet),
                jail,
                JAIL_SCOPES.get(jail, frozenset()),
                "held in the kernel",
                now,
                expires,
            )
            for subnet, jail, expires in self.ban_sets.held()
            if expires > now
        ]
        return self.with_unsaved(held)

    def with_unsaved(self, stored: list[Ban]) -> list[Ban]:
        """``stored`` and the bans made here that the store has not taken yet."""
        if not self.unsaved:
            return stored
        now = self.clock()
        keys = {(subnet_key(b.subnet), b.jail) for b in stored}
        extra = [
            b
            for b in self.unsaved
            if b.expires_at > now and (subnet_key(b.subnet), b.jail) not in keys
        ]
        return stored + extra if extra else stored

    # -- the ban sets -----------------------------------------------------------------
    def sync(self) -> None:
        """Put the bans stored since the last read into the kernel's sets
        (one transaction); after a removal, a failed update, or
        FULL_SYNC_SECONDS, make the sets equal to every stored ban instead."""
        now = self.clock()
        full = self.bans_dirty or now - self.last_full_sync >= FULL_SYNC_SECONDS
        delta = self.bans.changed_since(None if full else self.bans_revision)
        if delta.bans is None:
            return
        self.receiver.set_shares(delta.shares)
        with gc_paused():  # 100,000 bans: hundreds of thousands of kernel elements
            selection = self.receiver.select(delta.bans)
            _log_left_out(selection.whitelisted, delta.full, self.receiver.node)
            if delta.full:
                self._sync_bans(self.with_unsaved(selection.enforced))
                self.last_full_sync = now
            else:
                self._sync_bans(selection.enforced, partial=True)
        self.bans_revision = delta.revision
        self.bans_dirty = False
        # New bans the kernel refused earlier are in it now.
        self.health.succeeded("agent:new-bans")

    def _sync_bans(self, bans: list[Ban], partial: bool = False) -> None:
        """Make the kernel's ban sets hold ``bans`` (``partial``: hold them
        too): the changes ``BanSets`` computes, committed as one transaction
        (plain adds for the new bans: 100,000 imported addresses are one
        netlink batch).

        What the agent believes the kernel holds changes only after the
        commit succeeded, so an attempt that fails is made again in full by
        the next one, not forgotten. A failure the kernel did not name (an
        answer lost, a socket error) leaves unknown how much of the
        transaction landed: the mirror takes it as possibly landed
        (``BanSets.unsure``) and the whole table is loaded again (``stale``),
        so that no element the mirror does not know of stays in the kernel
        after its ban was lifted.
        """
        changes = self.ban_sets.sync(bans, self.clock(), partial=partial)
        if not changes:
            return
        for subnet, jail in changes.removed:
            self.forget(subnet.network_address, jail)
        try:
            commit_changes(self.backend, changes)
        except KernelError as exc:
            # A subnet inside a broader banned one is refused element by
            # element; the whole table, with its sets folded, never is.
            log.warning("ban sets: %s; loading the whole table instead", exc)
            if self.config is not None:
                config, revision = self.config, self.loaded_revision
            else:
                revision, config = self.firewall.applied_configuration()
            # After a partial read, the whole table takes every stored ban.
            self.apply(config, revision, None if partial else bans)
            return
        except BaseException:
            # Part of it may have landed: remember it may, and reload the table.
            self.ban_sets.unsure(changes)
            self.stale = True
            raise
        self.ban_sets.landed(changes)
        log.info(
            "ban sets: %d added, %d renewed, %d removed",
            changes.added,
            changes.renewed,
            len(changes.removed),
        )

    def add_new(self, bans: list[Ban], now: float) -> bool:
        """Put bans just decided into the kernel's sets at once; False when
        the kernel refused them (a subnet inside a broader banned one): the
        whole table must be loaded instead. Any other failure raises, and
        marks the table ``stale`` (how much landed is unknown: _sync_bans)."""
        changes = self.ban_sets.add_new(bans, now)
        try:
            commit_changes(self.backend, changes)
        except KernelError as exc:
            log.warning("ban sets: %s; loading the whole table instead", exc)
            return False
        except BaseException:
            self.ban_sets.unsure(changes)
            self.stale = True
            raise
        self.ban_sets.landed(changes)
        return True


def _log_left_out(whitelisted: list[tuple[Ban, str]], full: bool, node: str) -> None:
    """Say which bans this node's whitelist leaves out (the first few; on a
    full read, at debug level: they were said when they first came), each
    origin as this node names it (``fleet:NODE`` for another node's)."""
    level = logging.DEBUG if full else logging.INFO
    for ban, why in whitelisted[:3]:
        log.log(
            level,
            "not enforcing here the ban of %s (%s): %s",
            ban.address_text(),
            origin_seen_from(ban.origin, ban.node, node),
            why,
        )
    if len(whitelisted) > 3:
        log.log(
            level,
            "not enforcing here %d more bans this node's whitelist covers",
            len(whitelisted) - 3,
        )
