"""The rows each agent owns (migration 0009): handing over those stored before.

``log_offsets``, ``source_status`` and ``ips_counters`` carry the node whose
agent wrote them. Rows stored before nodes owned them have the node ``''``;
the first agent that starts on the upgraded database takes them over
(:func:`adopt_unowned`), so an upgraded single PBX goes on reading its logs
where it stopped and keeps its counters (docs/decisions.md, "Node-owned rows").
"""

from __future__ import annotations

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import aliased

from pbxfw.storage.models import IpsCounterRow, LogOffsetRow, SourceStatusRow
from pbxfw.storage.repository import Repository

__all__ = ["UNOWNED", "adopt_unowned"]

#: The node of the rows stored before migration 0009.
UNOWNED = ""

_COUNTERS = ("lines", "failures", "bans", "whitelisted")


def adopt_unowned(repo: Repository, node: str) -> int:
    """Inside a write unit of work: make the unowned rows ``node``'s; returns
    how many rows it took over (0 on every start but the first).

    A log position is taken only where ``node`` has none of its own for that
    path (its own is newer); counters are added to ``node``'s; unowned source
    health is dropped (the agent writes its sources' health again at start).
    """
    if node == UNOWNED:
        return 0
    session = repo.session
    mine = aliased(LogOffsetRow)
    taken = session.execute(
        update(LogOffsetRow)
        .where(
            LogOffsetRow.node == UNOWNED,
            ~exists().where(mine.node == node, mine.path == LogOffsetRow.path),
        )
        .values(node=node)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(LogOffsetRow).where(LogOffsetRow.node == UNOWNED))
    old = session.execute(
        select(IpsCounterRow.__table__).where(IpsCounterRow.node == UNOWNED)
    ).all()
    for row in old:
        repo.add_ips_counters(row.jail, node=node, **{c: getattr(row, c) for c in _COUNTERS})
    session.execute(delete(IpsCounterRow).where(IpsCounterRow.node == UNOWNED))
    dropped = session.execute(delete(SourceStatusRow).where(SourceStatusRow.node == UNOWNED))
    return _count(taken) + len(old) + _count(dropped)


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
