"""Rows of ``config_history`` (migration 0015) ↔ ``HistoryEntry``.

Kept apart from repository.py, like sites.py. The document is stored as
zlib-compressed JSON (a configuration of 10,000 networks is ~1.5 MB of
JSON, ~10 times less compressed). Each site keeps its newest
:data:`KEEP` entries of each kind; older ones are deleted when a new one is
written (:func:`add_entry`).
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from sqlalchemy import delete, select

from pbxfw.domain.history import CONFIG, HistoryEntry
from pbxfw.storage.models import ConfigHistoryRow, NetworkRow
from pbxfw.storage.repository import Repository

__all__ = [
    "KEEP",
    "add_entry",
    "document_at",
    "entries",
    "entry",
    "last_config",
    "last_config_rev",
    "network_documents",
    "previous_document",
]

#: Entries kept per site and kind (configuration revisions; administrators' bans).
KEEP = 1000

_LISTED = (
    ConfigHistoryRow.rev,
    ConfigHistoryRow.site,
    ConfigHistoryRow.at,
    ConfigHistoryRow.actor,
    ConfigHistoryRow.via,
    ConfigHistoryRow.client,
    ConfigHistoryRow.summary,
    ConfigHistoryRow.kind,
)


def network_documents(repo: Repository, keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The networks of ``repo.site`` in the document's form (``usecases.networks
    network_json`` of the normalised networks: one verdict per key of ``keys``,
    a missing one ``block``), read straight from the rows: the subnets are
    stored canonical, so no network object is built (a tenth of the time for
    10,000 networks; the history records a document at every edit)."""
    table = NetworkRow.__table__
    rows = repo.session.execute(
        select(
            table.c.id,
            table.c.name,
            table.c.subnet,
            table.c.services,
            table.c.local,
            table.c.never_block,
            table.c.description,
        )
        .where(table.c.site == repo.site)
        .order_by(table.c.id)
    )
    known: dict[str, dict[str, str]] = {}
    documents = []
    for row in rows:
        services = known.get(row.services)
        if services is None:
            stored = json.loads(row.services)
            services = {k: str(stored.get(k, "block")) for k in keys}
            known[row.services] = services
        documents.append(
            {
                "id": row.id,
                "name": row.name,
                "subnet": row.subnet,
                "services": dict(services),
                "local": bool(row.local),
                "never_block": bool(row.never_block),
                "description": row.description,
            }
        )
    return documents


def _pack(document: dict[str, Any]) -> bytes:
    # Level 1: a tenth of the JSON already (document_of's order is deterministic),
    # in half the time of the default level.
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
    return zlib.compress(text.encode(), 1)


def _unpack(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(zlib.decompress(data))
    return document


def add_entry(
    repo: Repository,
    *,
    site: str,
    kind: str,
    at: float,
    actor: str,
    via: str,
    client: str,
    summary: str,
    document: dict[str, Any] | None = None,
    keep: int | None = None,
) -> int:
    """Insert one entry (in the caller's transaction) and drop those of
    ``site`` and ``kind`` older than the newest ``keep`` (default :data:`KEEP`);
    returns its rev."""
    keep = KEEP if keep is None else keep
    row = ConfigHistoryRow(
        site=site,
        kind=kind,
        at=at,
        actor=actor[:160],
        via=via[:16],
        client=client[:64],
        summary=summary,
        document=None if document is None else _pack(document),
    )
    repo.session.add(row)
    repo.session.flush()
    oldest_kept = repo.session.scalar(
        select(ConfigHistoryRow.rev)
        .where(ConfigHistoryRow.site == site, ConfigHistoryRow.kind == kind)
        .order_by(ConfigHistoryRow.rev.desc())
        .offset(keep - 1)
        .limit(1)
    )
    if oldest_kept is not None:
        repo.session.execute(
            delete(ConfigHistoryRow).where(
                ConfigHistoryRow.site == site,
                ConfigHistoryRow.kind == kind,
                ConfigHistoryRow.rev < oldest_kept,
            )
        )
    return row.rev


def last_config_rev(repo: Repository, site: str) -> int | None:
    """The newest configuration revision recorded for ``site`` (one indexed query)."""
    head = last_config(repo, site)
    return None if head is None else head[0]


def last_config(repo: Repository, site: str) -> tuple[int, float] | None:
    """The rev and time of the newest configuration entry of ``site`` (one
    indexed query, no document): together they name one entry of one database."""
    row = repo.session.execute(
        select(ConfigHistoryRow.rev, ConfigHistoryRow.at)
        .where(ConfigHistoryRow.site == site, ConfigHistoryRow.kind == CONFIG)
        .order_by(ConfigHistoryRow.rev.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.rev, row.at)


def document_at(repo: Repository, rev: int) -> dict[str, Any] | None:
    """The document of the entry ``rev`` (None: no such entry, or a ban's)."""
    data = repo.session.scalar(select(ConfigHistoryRow.document).where(ConfigHistoryRow.rev == rev))
    return None if data is None else _unpack(data)


def previous_document(
    repo: Repository, site: str, before: int | None
) -> tuple[int, dict[str, Any]] | None:
    """The rev and document of the newest configuration entry of ``site``
    older than ``before`` (None: the newest of all); None when there is none."""
    query = select(ConfigHistoryRow.rev, ConfigHistoryRow.document).where(
        ConfigHistoryRow.site == site,
        ConfigHistoryRow.kind == CONFIG,
        ConfigHistoryRow.document.is_not(None),
    )
    if before is not None:
        query = query.where(ConfigHistoryRow.rev < before)
    row = repo.session.execute(query.order_by(ConfigHistoryRow.rev.desc()).limit(1)).first()
    if row is None or row.document is None:
        return None
    return row.rev, _unpack(row.document)


def entries(
    repo: Repository, sites: tuple[str, ...], limit: int, before: int | None = None
) -> list[HistoryEntry]:
    """The newest ``limit`` entries of ``sites``, newest first, without documents."""
    query = select(*_LISTED).where(ConfigHistoryRow.site.in_(sites))
    if before is not None:
        query = query.where(ConfigHistoryRow.rev < before)
    rows = repo.session.execute(query.order_by(ConfigHistoryRow.rev.desc()).limit(limit))
    return [HistoryEntry(*row) for row in rows]


def entry(repo: Repository, rev: int, sites: tuple[str, ...]) -> HistoryEntry | None:
    """The entry ``rev`` with its document, if it belongs to one of ``sites``."""
    row = repo.session.get(ConfigHistoryRow, rev)
    if row is None or row.site not in sites:
        return None
    return HistoryEntry(
        row.rev,
        row.site,
        row.at,
        row.actor,
        row.via,
        row.client,
        row.summary,
        row.kind,
        None if row.document is None else _unpack(row.document),
    )
