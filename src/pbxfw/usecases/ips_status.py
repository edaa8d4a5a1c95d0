"""The intrusion prevention's status: one answer for the CLI, the REST API and the web page.

``pbxfw ips status --json``, ``GET /api/v1/ips/status`` and the IPS page all
show this value, so their fields and figures cannot drift apart. The agent
writes the counters and the source health; this reader never writes.
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
    and whitelisted hits; ``sources``: every log source the agent follows and
    every failing part of its loop, log sources first (as the agent recorded it)."""

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


def ips_status(store: Store, clock: Callable[[], float] = time.time) -> IpsStatus:
    """Read the status in one unit of work (one consistent snapshot)."""
    with store.read() as repo:
        return IpsStatus(
            enabled=repo.settings().ips_enabled,
            active_bans=len(repo.bans(now=clock())),
            jails=repo.ips_counters(),
            sources=_stored_sources(repo),
        )
