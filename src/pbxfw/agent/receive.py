"""Which stored bans this node enforces (shared bans, docs/fleet-bans.md).

The store holds every node's bans. A node enforces those that
``ips_share`` gives it (domain.sharing: an administrator's ban everywhere,
its own always, another node's by the shares of the two sites) and that
its own whitelist does not cover: its own site's never-block networks and
``ips_whitelist``, and its own addresses. So one site's trusted office is
never banned by another site's detection.

``Receiver`` keeps the receiving node's identity, the sites' shares (read
with the bans, usecases.bans ``BanDelta.shares``) and the whitelist index
(agent.rules refreshes it), and splits a list of bans accordingly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pbxfw.domain.bans import Ban
from pbxfw.domain.sharing import Here
from pbxfw.domain.whitelist import Whitelist, WhitelistIndex

__all__ = ["Receiver", "Selection"]


@dataclass(slots=True)
class Selection:
    """``enforced``: the bans this node holds in its kernel; ``whitelisted``:
    those it would hold but its whitelist covers (with the reason);
    ``elsewhere``: how many ``ips_share`` keeps at other nodes."""

    enforced: list[Ban] = field(default_factory=list)
    whitelisted: list[tuple[Ban, str]] = field(default_factory=list)
    elsewhere: int = 0


class Receiver:
    """The receiving side of shared bans, for the node ``node`` of ``site``."""

    def __init__(self, node: str, site: str) -> None:
        self.here = Here(node, site, {})
        self._index: WhitelistIndex | None = None

    @property
    def node(self) -> str:
        return self.here.node

    @property
    def site(self) -> str:
        return self.here.site

    def set_shares(self, shares: Mapping[str, str]) -> None:
        """Each site's ``ips_share`` (a site not named shares ``fleet``)."""
        if dict(shares) != dict(self.here.shares):
            self.here = Here(self.here.node, self.here.site, dict(shares))

    def set_whitelist(self, whitelist: Whitelist | None) -> None:
        self._index = whitelist.index() if whitelist is not None else None

    def select(self, bans: Sequence[Ban]) -> Selection:
        """Split ``bans`` into those enforced here, those this node's whitelist
        covers, and those kept elsewhere by ``ips_share``."""
        selection = Selection()
        here, node = self.here, self.here.node
        # The common cases first: an administrator's ban, this node's own
        # (no call per ban); then the shares of the two sites.
        shared = [
            ban
            for ban in bans
            if ban.node is None or ban.node == node or here.enforces(ban.node, ban.site)
        ]
        selection.elsewhere = len(bans) - len(shared)
        index = self._index
        if index is None:
            selection.enforced = shared
            return selection
        # One IPv4 host (nearly every ban) is one bisection in one table for
        # the whole list (10,000 bans: 10 ms instead of 100).
        hosts = [
            int(ban.subnet.network_address)
            if ban.subnet.prefixlen == 32 and ban.subnet.version == 4
            else -1
            for ban in shared
        ]
        reasons = index.ipv4_host_reasons(hosts)
        enforced, whitelisted = selection.enforced, selection.whitelisted
        for ban, host, why in zip(shared, hosts, reasons, strict=True):
            if host < 0:
                why = index.reason(ban.subnet)
            if why:
                whitelisted.append((ban, why))
            else:
                enforced.append(ban)
        return selection

    def owns(self, ban: Ban) -> bool:
        """May this node lift ``ban`` from the store when its whitelist covers
        it? Its own detections and an administrator's bans (no node): yes, as
        a single PBX always did. Another node's: no: that node's whitelist
        may differ (its own addresses, its site's networks); it is only not
        enforced here (a site's never-block change lifts its site's bans in
        the store: usecases.bans ``lift_whitelisted``)."""
        return ban.node is None or ban.node == self.here.node
