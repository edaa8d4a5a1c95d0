"""Rows of ``nodes`` (migration 0005) ↔ ``Node``.

Kept apart from repository.py, like source_status.py: each running agent
writes its own row every few seconds (one UPDATE, an INSERT only when the row
is missing), and everything else reads. Plain SQLAlchemy Core, the same on
SQLite and PostgreSQL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select, update

from pbxfw.domain.nodes import Node
from pbxfw.storage.models import NodeRow
from pbxfw.storage.repository import Repository

__all__ = ["nodes", "remove_node", "save_node"]


def _node(row: Any) -> Node:
    return Node(
        name=row.name,
        site=row.site,
        registered_at=row.registered_at,
        started_at=row.started_at,
        last_seen=row.last_seen,
        applied_revision=row.applied_revision,
        kernel_bans=row.kernel_bans,
        version=row.version,
        log_lag_bytes=row.log_lag_bytes,
        last_error=row.last_error,
    )


def nodes(repo: Repository) -> list[Node]:
    """Every node, by site then name."""
    rows = repo.session.execute(select(NodeRow.__table__).order_by(NodeRow.site, NodeRow.name))
    return [_node(r) for r in rows]


def save_node(repo: Repository, node: Node) -> bool:
    """Store what ``node`` reports; True when its row was made (a first
    registration, or again after ``node rm``).

    One UPDATE of the row; ``registered_at`` is kept from the stored row
    (``node.registered_at`` is used only when the row is made).
    """
    values = {
        "site": node.site,
        "started_at": node.started_at,
        "last_seen": node.last_seen,
        "applied_revision": node.applied_revision,
        "kernel_bans": node.kernel_bans,
        "version": node.version,
        "log_lag_bytes": node.log_lag_bytes,
        "last_error": node.last_error,
    }
    result = repo.session.execute(update(NodeRow).where(NodeRow.name == node.name).values(values))
    if getattr(result, "rowcount", 0):
        return False
    repo.session.execute(
        insert(NodeRow).values(name=node.name, registered_at=node.registered_at, **values)
    )
    return True


def remove_node(repo: Repository, name: str) -> bool:
    """Delete the row of ``name``; False when there was none."""
    result = repo.session.execute(delete(NodeRow).where(NodeRow.name == name))
    return bool(getattr(result, "rowcount", 0))
