"""Rows of ``source_status`` (migration 0003; per node since 0009) ↔ ``SourceStatus``.

Kept apart from repository.py: the agent writes these rows only when a
source's health changes, and everything else only reads them. Each agent
writes the rows of its own node (``SourceStatus.node``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.models import SourceStatusRow
from pbxfw.storage.repository import Repository

__all__ = ["forget_source_statuses", "save_source_statuses", "source_statuses"]


def source_statuses(repo: Repository, node: str | None = None) -> list[SourceStatus]:
    """The stored statuses of ``node`` (None: of every node): log sources
    first, then the agent's parts, by name, then by node."""
    query = select(SourceStatusRow.__table__)
    if node is not None:
        query = query.where(SourceStatusRow.node == node)
    statuses = [
        SourceStatus(r.source, r.jail, r.error, r.since, r.failures, r.updated_at, r.node)
        for r in repo.session.execute(query)
    ]
    return sorted(statuses, key=lambda s: (not s.is_log, s.source, s.node))


def save_source_statuses(repo: Repository, statuses: Iterable[SourceStatus]) -> None:
    """Insert or replace the status of each source (of its node)."""
    for status in statuses:
        repo.session.execute(
            delete(SourceStatusRow).where(
                SourceStatusRow.node == status.node, SourceStatusRow.source == status.source
            )
        )
        repo.session.add(
            SourceStatusRow(
                node=status.node,
                source=status.source,
                jail=status.jail,
                error=status.error,
                since=status.since,
                failures=status.failures,
                updated_at=status.updated_at,
            )
        )
    repo.session.flush()


def forget_source_statuses(
    repo: Repository, sources: Iterable[str] | None = None, node: str = ""
) -> None:
    """Delete ``node``'s status of ``sources`` (None: of every source)."""
    stmt = delete(SourceStatusRow).where(SourceStatusRow.node == node)
    if sources is not None:
        wanted = list(sources)
        if not wanted:
            return
        stmt = stmt.where(SourceStatusRow.source.in_(wanted))
    repo.session.execute(stmt)
