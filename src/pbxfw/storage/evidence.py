"""Ban evidence rows (migration 0014): write a batch's, read an address's, prune old ones.

Beside the repository (as storage.nodes): functions over a ``Repository``'s
unit of work. A ban's evidence is one ``ban_evidence`` row keyed by the
ban's id, its lines packed (domain.evidence ``pack``); it goes with its ban
(``ON DELETE CASCADE``) or after ``ips_evidence_days`` (``prune``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import delete, insert, select

from pbxfw.domain.bans import Ban
from pbxfw.domain.evidence import BanEvidence, pack, unpack
from pbxfw.storage.bans import _ban_from_row, cast_table
from pbxfw.storage.models import BanEvidenceRow, BanRow

if TYPE_CHECKING:
    from pbxfw.storage.repository import Repository

__all__ = ["ban_history", "prune", "save_evidence"]

#: Bans looked up per statement (well within SQLite's bound variables).
_CHUNK = 400


def save_evidence(repo: Repository, bans: Sequence[Ban], now: float) -> int:
    """Store the evidence carried by ``bans`` (already saved in this unit of
    work), replacing what a renewed ban had; returns the rows written.
    Costs nothing for bans without evidence (imports, an administrator's)."""
    carrying = {(str(b.subnet), b.jail): b.evidence for b in bans if b.evidence is not None}
    if not carrying:
        return 0
    session = repo.session
    table = cast_table(BanRow.__table__)
    # By subnet, the unique index's first column: SQLite searches the index
    # for a list of subnets, but scans the whole table for a list of
    # (subnet, jail) pairs.
    subnets = sorted({subnet for subnet, _ in carrying})
    ids: dict[tuple[str, str], int] = {}
    for start in range(0, len(subnets), _CHUNK):
        rows = session.execute(
            select(table.c.id, table.c.subnet, table.c.jail).where(
                table.c.subnet.in_(subnets[start : start + _CHUNK])
            )
        )
        ids.update({(subnet, jail): ident for ident, subnet, jail in rows})
    values = [
        {"ban_id": ids[key], "created_at": now, "data": pack(evidence)}
        for key, evidence in carrying.items()
        if key in ids and evidence is not None
    ]
    found = [v["ban_id"] for v in values]
    for start in range(0, len(found), _CHUNK):
        session.execute(
            delete(BanEvidenceRow).where(BanEvidenceRow.ban_id.in_(found[start : start + _CHUNK]))
        )
    if values:
        session.execute(insert(BanEvidenceRow), values)
    return len(values)


def ban_history(repo: Repository, subnet: str) -> list[tuple[Ban, BanEvidence | None]]:
    """Every stored ban of ``subnet`` (active or ended, not yet pruned), newest
    first, each with its ``who`` and its evidence (None: none kept)."""
    table = cast_table(BanRow.__table__)
    rows = repo.session.execute(
        select(table, BanEvidenceRow.data)
        .outerjoin(BanEvidenceRow, BanEvidenceRow.ban_id == table.c.id)
        .where(table.c.subnet == subnet)
        .order_by(table.c.created_at.desc(), table.c.id.desc())
    ).all()
    found: list[tuple[Ban, BanEvidence | None]] = []
    for row in rows:
        evidence = None
        if row.data is not None:
            try:
                evidence = unpack(row.data)
            except ValueError:
                evidence = None  # unreadable: shown as none rather than failing the page
        found.append((_ban_from_row(row), evidence))
    return found


def prune(repo: Repository, before: float) -> tuple[int, int]:
    """Delete the evidence made before ``before``, and the bans that ended
    before it (with their evidence); returns (evidence rows, bans) deleted.

    The ended bans are no longer in any kernel (their elements lapsed by
    their own timeouts), so no ban revision is counted: nothing for the
    agents to read (storage.bans ``purge_expired_bans``)."""
    gone = repo.session.execute(delete(BanEvidenceRow).where(BanEvidenceRow.created_at < before))
    bans = repo.purge_expired_bans(before)
    return int(getattr(gone, "rowcount", 0) or 0), bans
