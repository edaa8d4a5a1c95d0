"""Notification channels (issue 19): add, list, remove, test; what the agent's notifier reads and writes.

A channel is part of its site's configuration (``--site``); adding or
removing one does not change the firewall, so it does not bump the
configuration revision (nothing to apply). The agent reads the channels
again every ``RELOAD_SECONDS`` (agent.notifier). Secrets never leave this
module unmasked except towards the sender: listings carry
``domain.notifications.masked`` text.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pbxfw.domain.bans import Ban
from pbxfw.domain.nodes import Node, NodeState, node_state
from pbxfw.domain.notifications import Channel, ChannelStatus, channel_json, validate_channel
from pbxfw.domain.notify_messages import probe_message
from pbxfw.errors import NotFoundError
from pbxfw.storage.repository import Store
from pbxfw.usecases.notify_send import DEFAULT_TIMEOUT, deliver

__all__ = ["ChannelView", "DigestFacts", "NotifyService"]


@dataclass(frozen=True, slots=True)
class ChannelView:
    """A channel as ``notify list`` shows it: masked, with what every node saw of it."""

    channel: Channel
    statuses: tuple[ChannelStatus, ...]

    @property
    def last_error(self) -> str:
        """The newest error of any node ("" when the newest outcome was a success)."""
        latest = max(self.statuses, key=lambda s: s.updated_at, default=None)
        return latest.last_error if latest else ""

    @property
    def last_sent_at(self) -> float | None:
        return max((s.last_sent_at for s in self.statuses if s.last_sent_at), default=None)

    def as_json(self) -> dict[str, Any]:
        return channel_json(self.channel) | {
            "last_sent_at": self.last_sent_at,
            "last_error": self.last_error,
            "sent": sum(s.sent for s in self.statuses),
            "failed": sum(s.failed for s in self.statuses),
            "dropped": sum(s.dropped for s in self.statuses),
            "nodes": [s.as_json() for s in self.statuses],
        }


@dataclass(frozen=True, slots=True)
class DigestFacts:
    """What the daily digest reports (read once a day)."""

    bans_24h: list[Ban]
    active: int
    #: ``(node, part, error)`` of what fails on the site's nodes still reporting
    failing: list[tuple[str, str, str]]


class NotifyService:
    """The channels of one site (``site``, else the store's)."""

    def __init__(
        self, store: Store, site: str | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store if site is None else store.at_site(site)
        self.clock = clock

    @property
    def site(self) -> str:
        return self.store.site

    # -- the administrator's ---------------------------------------------------
    def channels(self) -> list[Channel]:
        """The channels with their secrets: for the sender only, never shown."""
        from pbxfw.storage.channels import channels

        with self.store.read() as repo:
            return channels(repo)

    def channel(self, name: str) -> Channel:
        for channel in self.channels():
            if channel.name == name:
                return channel
        raise NotFoundError(f"no notification channel {name!r}; see `pbxfw notify list`")

    def listing(self) -> list[ChannelView]:
        from pbxfw.storage.channels import channel_statuses, channels

        with self.store.read() as repo:
            found = channels(repo)
            statuses = channel_statuses(repo)
        return [ChannelView(c, tuple(s for s in statuses if s.channel == c.name)) for c in found]

    def add(self, name: str, url: str, template: str | None = None) -> Channel:
        """Validate and store a channel; ``ValidationError`` names the field."""
        from pbxfw.storage.channels import add_channel, channels

        with self.store.write() as repo:
            channel = validate_channel(name, url, template, channels(repo))
            return add_channel(repo, channel, self.clock())

    def remove(self, name: str) -> Channel:
        from pbxfw.storage.channels import channels, remove_channel

        with self.store.write() as repo:
            for channel in channels(repo):
                if channel.name == name:
                    remove_channel(repo, channel)
                    return channel
        raise NotFoundError(f"no notification channel {name!r}; see `pbxfw notify list`")

    def test(self, name: str, *, node: str = "", timeout: float = DEFAULT_TIMEOUT) -> Channel:
        """Send a test message through ``name`` now; ``DeliveryError`` says why not."""
        channel = self.channel(name)
        deliver(
            channel, probe_message(channel.name, self.clock(), self.site, node), timeout=timeout
        )
        return channel

    # -- the agent's -----------------------------------------------------------
    def statuses(self, node: str) -> list[ChannelStatus]:
        from pbxfw.storage.channels import channel_statuses

        with self.store.read() as repo:
            return channel_statuses(repo, node)

    def save_statuses(self, statuses: Iterable[ChannelStatus]) -> None:
        from pbxfw.storage.channels import save_channel_statuses

        with self.store.write() as repo:
            save_channel_statuses(repo, statuses)

    def nodes(self) -> list[Node]:
        """The nodes of this site (for the stale-node trigger)."""
        from pbxfw.storage.nodes import nodes

        with self.store.read() as repo:
            return [n for n in nodes(repo) if n.site == self.site]

    def digest_facts(self, now: float, node: str) -> DigestFacts:
        """The digest's figures at ``now``: the bans this site enforces, and
        what fails on the site's nodes that still report (``node``, the
        caller's, counts as one: it may not have reported yet). A stale
        node's last word may no longer hold: the digest lists it as not
        reporting instead. Under a node's role (docs/fleet-roles.md) the
        policies let it read exactly these rows."""
        from pbxfw.storage.nodes import nodes
        from pbxfw.storage.source_status import source_statuses

        with self.store.read() as repo:
            bans = [b for b in repo.bans() if b.site in (None, self.site)]
            reporting = {node} | {
                n.name
                for n in nodes(repo)
                if n.site == self.site and node_state(n, now, 0) is not NodeState.STALE
            }
            failing = [
                (s.node, s.source, s.error)
                for s in source_statuses(repo)
                if s.error and s.node in reporting
            ]
        active = sum(1 for b in bans if b.expires_at > now)
        return DigestFacts([b for b in bans if b.created_at >= now - 86400], active, failing)
