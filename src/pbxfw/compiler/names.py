"""The names of the table, its sets and chains, and the flow-tag constants.

Shared by the ruleset builder, the ban-element commands and the kernel
adapter (which finds the flow-tag rules by their comments), so a name is
written in one place only.
"""

from __future__ import annotations

from pbxfw.domain.jails import JAIL_SCOPES

__all__ = [
    "CHAIN_PRIORITY",
    "FLOW_CACHE_COMMENT",
    "FLOW_CHAIN",
    "FLOW_MARK_COMMENT",
    "FLOW_MARK_MASK",
    "TABLE",
    "TABLE_FAMILY",
    "allow_set_name",
    "ban_set_name",
    "guard_set_name",
]

TABLE_FAMILY = "inet"
TABLE = "pbxfw"
#: Conntrack runs at -200 and mangle at -150, so ``ct state`` is known here.
#: Distribution firewalls (firewalld, ufw, iptables-nft, Docker) sit at
#: ``filter`` (0); running just before them makes our order relative to them
#: deterministic, and bans/rate limits cut a flood before other tables spend
#: time on it. Our accept never overrides another table's drop (each base
#: chain decides independently); our drop is final.
CHAIN_PRIORITY = "filter - 10"

#: The bits of ``ct mark`` pbxfw uses for its flow cache: a flow the allow
#: sets accepted carries the flow tag there, and its next packets are
#: accepted on that alone, before any other check, while the tag stays the
#: same. A one-way UDP flow (a SIP flood, one-way RTP) never becomes
#: ``established``, so without this every packet walked the ban guards, the
#: port map and a set of thousands of intervals. The tag changes with every
#: load and every ban batch (``pbxfw.kernel``), so a banned source's flows
#: are decided again at their next packet. The low 16 bits stay free for
#: other users of ``ct mark`` (policy routing with CONNMARK).
FLOW_MARK_MASK = 0xFFFF0000
#: The chain every allow verdict ends in: it marks the flow with the tag.
FLOW_CHAIN = "flow_allowed"
#: The comments that let the kernel adapter find the two rules holding the
#: tag (the cache check in ``input``, the marking rule in FLOW_CHAIN).
FLOW_CACHE_COMMENT = "a flow allowed under this policy and these bans"
FLOW_MARK_COMMENT = "remember the allow in the flow cache"


def ban_set_name(jail: str, version: int, subnets: bool = False) -> str:
    """``ban_asterisk_v4``: the set of ``jail``'s banned addresses of one
    family; ``ban_asterisk_net_v4`` (``subnets``) its banned subnets."""
    if jail not in JAIL_SCOPES:
        raise ValueError(f"unknown jail {jail!r}; known: {', '.join(sorted(JAIL_SCOPES))}")
    return f"ban_{jail}{'_net' if subnets else ''}_v{version}"


def guard_set_name(version: int, subnets: bool = False) -> str:
    """``banned_v4``: every banned address of every jail; ``banned_net_v4``
    (``subnets``): every banned subnet. The jump to the ban checks."""
    return f"banned{'_net' if subnets else ''}_v{version}"


def allow_set_name(service: str, version: int) -> str:
    """``allow_sip_v6``: the addresses that may reach ``service``."""
    return f"allow_{service}_v{version}"
