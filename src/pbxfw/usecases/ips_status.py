"""The intrusion prevention's status: one answer for the CLI, the REST API and the web page.

``pbxfw ips status --json``, ``GET /api/v1/ips/status`` and the IPS page all
show this value, so their fields and figures cannot drift apart. Each
node's agent writes its own counters and source health (migration 0009);
this reader never writes. Without a node it shows the whole fleet: the
counters summed over every node, and every node's sources, each naming its
node; with ``node`` only that node's (docs/decisions.md, "Node-owned rows").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.repository import Store
from pbxfw.storage.source_status import source_statuses as _stored_sources

__all__ = ["IpsStatus", "ips_status"]


@dataclass(frozen=True, slots=True)
class IpsStatus:
    """``enabled``: the ``ips_enabled`` switch; ``active_bans``: bans not yet
    expired; ``jails``: per jail, lines read, failures recognised, bans made
    and whitelisted hits (summed over the nodes read); ``sources``: every log
    source the agents follow and every failing part of their loops, log
    sources first (as each agent recorded it, naming its node)."""

    enabled: bool
    active_bans: int
    jails: dict[str, dict[str, int]]
    sources: list[SourceStatus]

    @property
    def failing(self) -> list[SourceStatus]:
        return [s for s in self.sources if not s.ok]

    def as_json(self) -> dict[str, Any]:
        """The answer of ``GET /api/v1/ips/status`` and ``pbxfw ips status --json``."""
        return {
            "enabled": self.enabled,
            "active_bans": self.active_bans,
            "jails": self.jails,
            "sources": [s.as_json() for s in self.sources],
        }


def ips_status(
    store: Store, clock: Callable[[], float] = time.time, node: str | None = None
) -> IpsStatus:
    """Read the status in one unit of work (one consistent snapshot): of the
    node ``node`` (its counters and sources), or of every node (None)."""
    with store.read() as repo:
        return IpsStatus(
            enabled=repo.settings().ips_enabled,
            active_bans=repo.count_bans(clock()),
            jails=repo.ips_counters(node),
            sources=_stored_sources(repo, node),
        )
