"""Rows of ``source_status`` (migration 0003) ↔ ``SourceStatus``.

Kept apart from repository.py: the agent writes these rows only when a
source's health changes, and everything else only reads them.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, select

from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.models import SourceStatusRow
from pbxfw.storage.repository import Repository

__all__ = ["forget_source_statuses", "save_source_statuses", "source_statuses"]


def source_statuses(repo: Repository) -> list[SourceStatus]:
    """Every stored status: log sources first, then the agent's parts, by name."""
    rows = repo.session.execute(select(SourceStatusRow.__table__))
    statuses = [
        SourceStatus(r.source, r.jail, r.error, r.since, r.failures, r.updated_at) for r in rows
    ]
    return sorted(statuses, key=lambda s: (not s.is_log, s.source))


def save_source_statuses(repo: Repository, statuses: Iterable[SourceStatus]) -> None:
    """Insert or replace the status of each source."""
    for status in statuses:
        repo.session.execute(delete(SourceStatusRow).where(SourceStatusRow.source == status.source))
        repo.session.add(
            SourceStatusRow(
                source=status.source,
                jail=status.jail,
                error=status.error,
                since=status.since,
                failures=status.failures,
                updated_at=status.updated_at,
            )
        )
    repo.session.flush()


def forget_source_statuses(repo: Repository, sources: Iterable[str] | None = None) -> None:
    """Delete the status of ``sources`` (None: of every source)."""
    stmt = delete(SourceStatusRow)
    if sources is not None:
        wanted = list(sources)
        if not wanted:
            return
        stmt = stmt.where(SourceStatusRow.source.in_(wanted))
    repo.session.execute(stmt)
