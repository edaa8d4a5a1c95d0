"""Rows of ``config_history`` (migration 0015) ↔ ``HistoryEntry``.

Kept apart from repository.py, like sites.py. A configuration entry's
document is stored as a snapshot (the whole configuration) or, most of the
time, as a delta (the networks changed since a snapshot, and the small rest
of the document): storage.history_format, docs/observability.md "History".
Each site keeps its newest :data:`KEEP` entries of each kind; older ones are
deleted when a new one is written (:func:`add_entry`), except the one
snapshot the oldest kept delta is made from, which is kept hidden
(:data:`BASE`) until no kept entry needs it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, cast

from sqlalchemy import (
    CursorResult,
    LargeBinary,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)

from pbxfw.domain.history import CONFIG, HistoryEntry
from pbxfw.storage import history_track
from pbxfw.storage.history_format import (
    DELTA,
    FULL,
    PREFIX,
    apply_changes,
    assemble,
    base_of,
    pack_full,
    read_networks,
    read_stored,
)
from pbxfw.storage.history_track import NETWORK_COLUMNS
from pbxfw.storage.models import ConfigHistoryRow, NetworkRow, SettingRow
from pbxfw.storage.repository import Repository

__all__ = [
    "BASE",
    "KEEP",
    "add_entry",
    "document_at",
    "entries",
    "entry",
    "head_entry",
    "last_config",
    "last_config_rev",
    "network_document",
    "network_documents",
    "previous_document",
    "stored_document",
    "stored_settings",
]

#: Entries kept per site and kind (configuration revisions; administrators' bans).
KEEP = 1000

#: The kind of a configuration entry older than the kept ones whose snapshot
#: the oldest kept entry is made from: neither listed nor shown.
BASE = "config-base"

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


def network_document(
    row: Any, keys: tuple[str, ...], known: dict[str, dict[str, str]] | None = None
) -> dict[str, Any]:
    """One network row (:data:`~pbxfw.storage.history_track.NETWORK_COLUMNS`)
    in the document's form: one verdict per key of ``keys``, a missing one
    ``block``. ``known``: the verdicts already decoded per services text."""
    services = None if known is None else known.get(row.services)
    if services is None:
        stored = json.loads(row.services)
        services = {k: str(stored.get(k, "block")) for k in keys}
        if known is not None:
            known[row.services] = services
    return {
        "id": row.id,
        "name": row.name,
        "subnet": row.subnet,
        "services": dict(services),
        "local": bool(row.local),
        "never_block": bool(row.never_block),
        "description": row.description,
    }


_NETWORKS = NetworkRow.__table__
_ALL_NETWORKS = (
    select(*NETWORK_COLUMNS).where(_NETWORKS.c.site == bindparam("site")).order_by(_NETWORKS.c.id)
)
_SOME_NETWORKS = _ALL_NETWORKS.where(_NETWORKS.c.id.in_(bindparam("ids", expanding=True)))


def network_documents(
    repo: Repository, keys: tuple[str, ...], ids: Iterable[int] | None = None
) -> list[dict[str, Any]]:
    """The networks of ``repo.site`` (only those of ``ids`` when given) in the
    document's form (``usecases.networks network_json`` of the normalised
    networks), in id order, read straight from the rows: the subnets are
    stored canonical, so no network object is built (a tenth of the time for
    10,000 networks)."""
    if ids is None:
        rows = list(repo.session.execute(_ALL_NETWORKS, {"site": repo.site}))
    else:
        wanted = sorted(set(ids))
        rows = [  # bound the statement's parameters (SQLite's limit)
            row
            for i in range(0, len(wanted), 1000)
            for row in repo.session.execute(
                _SOME_NETWORKS, {"site": repo.site, "ids": wanted[i : i + 1000]}
            )
        ]
    known: dict[str, dict[str, str]] = {}
    return [network_document(row, keys, known) for row in rows]


_SETTINGS = select(SettingRow.key, SettingRow.value).where(SettingRow.site == bindparam("site"))


def stored_settings(repo: Repository) -> dict[str, Any]:
    """``Repository.stored_settings`` (the values set explicitly) with a
    statement built once: the history reads them at every edit."""
    rows = repo.session.execute(_SETTINGS, {"site": repo.site})
    return {key: json.loads(value) for key, value in rows}


# The statements of every edit, built once: building and compiling them again
# cost more than running them (SQLite); run on the unit of work's connection.
_HEAD = (
    select(ConfigHistoryRow.rev, ConfigHistoryRow.document)
    .where(ConfigHistoryRow.site == bindparam("site"), ConfigHistoryRow.kind == CONFIG)
    .order_by(ConfigHistoryRow.rev.desc())
    .limit(1)
)
_INSERT = insert(ConfigHistoryRow)
#: the oldest entry to keep, and the first bytes of its document (a delta's base)
_OLDEST_KEPT = (
    select(
        ConfigHistoryRow.rev,
        func.substr(ConfigHistoryRow.document, 1, PREFIX, type_=LargeBinary),
    )
    .where(ConfigHistoryRow.site == bindparam("site"), ConfigHistoryRow.kind == bindparam("kind"))
    .order_by(ConfigHistoryRow.rev.desc())
    .offset(bindparam("skip"))
    .limit(1)
)


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
    stored: bytes | None = None,
    keep: int | None = None,
) -> int:
    """Insert one entry (in the caller's transaction) and drop those of
    ``site`` and ``kind`` older than the newest ``keep`` (default :data:`KEEP`);
    returns its rev. ``stored``: the document in a stored form
    (storage.history_format); ``document``: a whole document, stored full."""
    keep = KEEP if keep is None else keep
    data = stored if document is None else pack_full(document)
    # Core, not the ORM's unit of work: a third of the time, on every edit.
    connection = repo.session.connection()
    inserted = connection.execute(
        _INSERT,
        {
            "site": site,
            "kind": kind,
            "at": at,
            "actor": actor[:160],
            "via": via[:16],
            "client": client[:64],
            "summary": summary,
            "document": data,
        },
    )
    key = cast("CursorResult[Any]", inserted).inserted_primary_key
    assert key is not None  # an INSERT of one row
    rev = int(key[0])
    if kind == CONFIG and data is not None:
        history_track.new_head(repo.session, site, (rev, data))
    oldest = connection.execute(
        _OLDEST_KEPT, {"site": site, "kind": kind, "skip": keep - 1}
    ).first()
    if oldest is not None:
        needed = None if oldest[1] is None else base_of(bytes(oldest[1]))
        _prune(repo, site, kind, oldest[0], needed)
    return rev


def _prune(repo: Repository, site: str, kind: str, oldest_kept: int, needed: int | None) -> None:
    """Delete the entries of ``site`` and ``kind`` older than ``oldest_kept``,
    but the snapshot ``needed`` it is made from (a delta's base), hidden as
    :data:`BASE`: later entries are made from it or from newer snapshots
    (each delta names the newest snapshot before it), so it is all they need."""
    stale = (ConfigHistoryRow.site == site) & (ConfigHistoryRow.rev < oldest_kept)
    if kind != CONFIG:
        stale = stale & (ConfigHistoryRow.kind == kind)
    else:
        stale = stale & ConfigHistoryRow.kind.in_((CONFIG, BASE))
    if needed is not None:
        stale = stale & (ConfigHistoryRow.rev != needed)
        repo.session.execute(
            update(ConfigHistoryRow)
            .where(ConfigHistoryRow.rev == needed, ConfigHistoryRow.kind == CONFIG)
            .values(kind=BASE)
        )
    repo.session.execute(delete(ConfigHistoryRow).where(stale))


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


def head_entry(repo: Repository, site: str) -> tuple[int, bytes] | None:
    """The rev and stored document of the newest configuration entry of
    ``site`` (None: none yet)."""
    row = repo.session.connection().execute(_HEAD, {"site": site}).first()
    return None if row is None or row.document is None else (row.rev, bytes(row.document))


def stored_document(repo: Repository, data: bytes) -> dict[str, Any]:
    """The document a stored form says (a delta: with its base's networks)."""
    stored = read_stored(data)
    if stored.form == FULL:
        return stored.rest
    if stored.form != DELTA:
        return assemble(stored.rest, read_networks(data, stored))
    base = repo.session.scalar(
        select(ConfigHistoryRow.document).where(ConfigHistoryRow.rev == stored.base)
    )
    if base is None:  # pruning keeps every base a kept entry needs
        raise LookupError(f"the snapshot {stored.base} of a history entry is missing")
    return assemble(stored.rest, apply_changes(read_networks(bytes(base)), stored.changes))


def document_at(repo: Repository, rev: int) -> dict[str, Any] | None:
    """The document of the entry ``rev`` (None: no such entry, or a ban's)."""
    data = repo.session.scalar(select(ConfigHistoryRow.document).where(ConfigHistoryRow.rev == rev))
    return None if data is None else stored_document(repo, bytes(data))


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
    return row.rev, stored_document(repo, bytes(row.document))


def entries(
    repo: Repository, sites: tuple[str, ...], limit: int, before: int | None = None
) -> list[HistoryEntry]:
    """The newest ``limit`` entries of ``sites``, newest first, without documents."""
    query = select(*_LISTED).where(ConfigHistoryRow.site.in_(sites), ConfigHistoryRow.kind != BASE)
    if before is not None:
        query = query.where(ConfigHistoryRow.rev < before)
    rows = repo.session.execute(query.order_by(ConfigHistoryRow.rev.desc()).limit(limit))
    return [HistoryEntry(*row) for row in rows]


def entry(repo: Repository, rev: int, sites: tuple[str, ...]) -> HistoryEntry | None:
    """The entry ``rev`` with its document, if it belongs to one of ``sites``."""
    row = repo.session.get(ConfigHistoryRow, rev)
    if row is None or row.site not in sites or row.kind == BASE:
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
        None if row.document is None else stored_document(repo, bytes(row.document)),
    )
