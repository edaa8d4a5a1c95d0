"""Configurations shared by the compiler and real-packet tests."""

from __future__ import annotations

import ipaddress
from typing import Any

from pbxfw.domain.configuration import Configuration
from pbxfw.domain.networks import Network, Verdict, permanent_networks
from pbxfw.domain.services import BUILTIN_KEYS, CustomService
from pbxfw.domain.settings import Settings

__all__ = ["NASTY_NAMES", "lab_config", "network"]

#: Names that would break out of an nft string or comment if written raw.
NASTY_NAMES = (
    'Office "main"; drop',
    "} } table inet evil { chain x {",
    "back\\slash # not a comment",
    "$var @set ' quote",
)

CUSTOM = (CustomService.create("prov", "Provisioning", tcp="9000", udp="69"),)


def network(
    name: str, subnet: str, allow: str = "", keys: tuple[str, ...] = (), **flags: Any
) -> Network:
    """A network allowing the comma-separated ``allow`` services (``*``: all)."""
    keys = keys or (*BUILTIN_KEYS, "prov")
    allowed = set(keys) if allow == "*" else {k for k in allow.split(",") if k}
    services = {k: Verdict.ALLOW if k in allowed else Verdict.BLOCK for k in keys}
    return Network(name, ipaddress.ip_network(subnet), services, **flags)


def lab_config(**settings: Any) -> Configuration:
    """The nested networks of the lab (tests/kernel/test_packets.py).

    IPv4: the Internet allows sip+icmp; 198.51.100.128/25 blocks everything
    (narrow block inside broad allow), 198.51.100.7/32 inside it allows ssh+web
    (narrow allow inside broad block); the office /24 allows all and is never
    blocked, its /26 printer room blocks ssh and icmp. IPv6 alike.
    """
    internet4, internet6 = permanent_networks((*BUILTIN_KEYS, "prov"))
    nets = (
        internet4,
        internet6,
        network(NASTY_NAMES[0], "10.77.1.0/24", "*", local=True, never_block=True),
        network(NASTY_NAMES[1], "10.77.1.128/26", "sip,iax,web,ami,ajam,cti,prov"),
        network(NASTY_NAMES[2], "198.51.100.128/25", ""),
        network(NASTY_NAMES[3], "198.51.100.192/28", "ssh,web"),
        network("Provider", "203.0.113.0/24", "sip,iax,icmp,prov"),
        network("Office v6", "fd77:1::/64", "*", never_block=True),
        network("Lab v6", "fd77:1::100/120", "sip,icmp"),
        network("Bad v6", "2001:db8:bad::/48", ""),
        network("Admin v6", "2001:db8:bad::7/128", "ssh,icmp"),
    )
    base = {"firewall_enabled": True, **settings}
    return Configuration(nets, CUSTOM, Settings().updated(base))
