"""The whitelist: what intrusion prevention never bans, in one place.

Loopback, this host's own addresses, the never-block networks and
``ips_whitelist``. Gathered once from a configuration, then asked per
failure (``covers``) or per ban (``reason``): the agent, the ban use cases
and the decision all use this one definition.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from pbxfw.domain.addresses import IPAddress, IPNetwork
from pbxfw.domain.configuration import Configuration

__all__ = ["Whitelist"]


class Whitelist:
    """Everything never banned, gathered once from ``config`` and ``own``."""

    __slots__ = ("networks", "own")

    def __init__(self, config: Configuration, own: Iterable[IPAddress] = ()) -> None:
        self.own = list(own)
        self.networks: list[tuple[IPNetwork, str]] = [
            (n.subnet, f'it is in the never-block network "{n.name}" ({n.subnet})')
            for n in config.networks
            if n.never_block
        ]
        self.networks += [
            (ipaddress.ip_network(w), f"it is in ips_whitelist ({w})")
            for w in config.settings.ips_whitelist
        ]

    def including(self, other: Whitelist) -> Whitelist:
        """This whitelist widened by ``other``'s networks and addresses."""
        merged = Whitelist(Configuration(), self.own + other.own)
        merged.networks = self.networks + [n for n in other.networks if n not in self.networks]
        return merged

    def covers(self, address: IPAddress) -> bool:
        """Is this one address never banned?"""
        if address.is_loopback or address in self.own:
            return True
        return any(
            white.version == address.version and address in white for white, _ in self.networks
        )

    def reason(self, subnet: IPNetwork) -> str | None:
        """Why ``subnet`` may never be banned (it overlaps the whitelist), or None."""
        if subnet.is_loopback:
            return "loopback is never banned"
        for address in self.own:
            if address.version == subnet.version and address in subnet:
                return f"{address} is this host's own address"
        for white, why in self.networks:
            if white.version == subnet.version and white.overlaps(subnet):  # type: ignore[arg-type]
                return why
        return None
