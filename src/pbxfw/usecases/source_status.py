"""The health of the agent's log sources and parts, for the CLI, REST API and web page.

The agent writes it (pbxfw.agent.health, only when a state changes); these
readers never write.
"""

from __future__ import annotations

from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.repository import Store
from pbxfw.storage.source_status import source_statuses as _stored

__all__ = ["source_statuses"]


def source_statuses(store: Store) -> list[SourceStatus]:
    """What the agent last recorded: every log source it follows (healthy or
    not) and every part of its loop that is failing; log sources first."""
    with store.read() as repo:
        return _stored(repo)
