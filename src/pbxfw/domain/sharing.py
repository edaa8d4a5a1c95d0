"""Shared bans: which node enforces which ban, and how a node names its origin.

A ban is detected at one node of one site, or made by an administrator
(no node, no site). The site setting ``ips_share`` of the *detecting* site
says who else enforces its bans (docs/fleet-bans.md has the table):

- ``fleet``: every node of every site whose own ``ips_share`` is ``fleet``
  too, and every node of its own site;
- ``site``: every node of its own site;
- ``off``: the detecting node only.

An administrator's ban (no node) is enforced at every node. Each receiving
node then checks the ban against its own site's never-block networks and
whitelist (agent.rules): that check is not here, as it needs the addresses.
Pure: names and settings in, answers out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_SHARE", "Here", "enforced_at", "origin_seen_from"]

#: ``ips_share`` of a site that never set it.
DEFAULT_SHARE = "fleet"


@dataclass(frozen=True, slots=True)
class Here:
    """The receiving node: its name, its site, and each site's ``ips_share``
    (a site missing from ``shares`` shares ``DEFAULT_SHARE``)."""

    node: str
    site: str
    shares: Mapping[str, str]

    def share(self, site: str) -> str:
        return self.shares.get(site, DEFAULT_SHARE)

    def enforces(self, node: str | None, site: str | None) -> bool:
        """Does this node enforce a ban detected at ``node`` of ``site``?"""
        return enforced_at(
            node,
            site,
            self.node,
            self.site,
            self.share(site) if site is not None else DEFAULT_SHARE,
            self.share(self.site),
        )


def enforced_at(
    origin_node: str | None,
    origin_site: str | None,
    node: str,
    site: str,
    origin_share: str,
    share: str,
) -> bool:
    """Is a ban detected at ``origin_node`` of ``origin_site`` (whose site
    shares ``origin_share``) enforced at ``node`` of ``site`` (which shares
    ``share``)?

    ``origin_node`` None: an administrator's ban (or an import), enforced
    everywhere. A ban whose node is known but whose site is not (None) is
    taken as detected at the receiving node's site.
    """
    if origin_node is None or origin_node == node:
        return True
    if origin_share == "off":
        return False
    same_site = origin_site is None or origin_site == site
    if same_site:
        return True  # site or fleet: every node of the origin's site
    return origin_share == "fleet" and share == "fleet"


def origin_seen_from(origin: str, origin_node: str | None, node: str | None) -> str:
    """The origin as the node ``node`` names it: a ban another node detected
    reads ``fleet:<that node>``; any other (an administrator's, this node's
    own, or without a perspective: ``node`` None) keeps its stored origin."""
    if node is not None and origin_node is not None and origin_node != node:
        return f"fleet:{origin_node}"
    return origin
