"""The health of the agent's log sources and parts, for the CLI, REST API and web page.

The agent writes it (pbxfw.agent.health, only when a state changes, through
:func:`record_source_statuses`); the other callers only read.
"""

from __future__ import annotations

from collections.abc import Sequence

from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.repository import Store
from pbxfw.storage.source_status import forget_source_statuses, save_source_statuses
from pbxfw.storage.source_status import source_statuses as _stored

__all__ = ["record_source_statuses", "source_statuses"]


def source_statuses(store: Store, node: str | None = None) -> list[SourceStatus]:
    """What the agent of ``node`` (None: of every node) last recorded: every
    log source it follows (healthy or not) and every part of its loop that is
    failing; log sources first."""
    with store.read() as repo:
        return _stored(repo, node)


def record_source_statuses(
    store: Store,
    changed: Sequence[SourceStatus],
    *,
    forget: Sequence[str] = (),
    forget_all: bool = False,
    node: str = "",
) -> None:
    """In one transaction: forget ``node``'s rows of ``forget`` (every row of
    ``node`` when ``forget_all``), then store ``changed`` (one row per source
    and node: each status names its node)."""
    with store.write() as repo:
        if forget_all:
            forget_source_statuses(repo, node=node)
        else:
            forget_source_statuses(repo, list(forget), node=node)
        save_source_statuses(repo, changed)
