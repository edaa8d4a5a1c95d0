"""Bans: rows ↔ ``Ban`` (part of ``Repository``), and the bulk upsert of an import.

A mix-in of :class:`pbxfw.storage.repository.Repository`: the methods work
on ``self.session``, the unit of work the Repository was given. The upsert
is one statement per dialect (SQLite's ``json_each`` fast path, else
``INSERT … ON CONFLICT``, else delete-and-insert in chunks).

The revisions of the ban list (docs/fleet-bans.md, "Incremental
propagation"): a unit of work that writes bans counts the change once
(``bans_written``): ``meta.bans_revision`` + 1, and every row it writes
carries that number in ``bans.revision``. One that removes bans also sets
``meta.bans_removed_revision`` to it. Writers take turns (the one writer's
lock, storage.db), so a reader that sees ``bans_revision`` N in its snapshot
sees every row of revision ≤ N and none above: ``bans(since=R)`` is then
exactly what was written after R (one indexed query), and a removal after R
says that only a full read is right.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import json
import operator
from collections.abc import Sequence
from dataclasses import replace
from itertools import islice, repeat
from typing import TYPE_CHECKING, Any

from sqlalchemy import ARRAY, Table, Text, bindparam, delete, func, insert, select
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session

from pbxfw.bulk import gc_paused
from pbxfw.domain.addresses import fast_ipv4_host, networks_from_text
from pbxfw.domain.bans import Ban, bounded_expiries, new_ban, scope_from_text, scope_text
from pbxfw.domain.jails import JAIL_SCOPES
from pbxfw.domain.setting_rules import SHARE_MODES
from pbxfw.storage.models import BanRow, SettingRow

__all__ = ["BanRows", "cast_table"]


class BanRows:
    """Reads and writes of bans on ``self.session``."""

    session: Session
    #: the ban revision this unit of work writes (None: it wrote no ban yet)
    _bans_revision_written: int | None = None
    _bans_removal_written = False

    if TYPE_CHECKING:  # Repository's, beside this part

        def get_meta(self, key: str) -> str | None: ...
        def set_meta(self, key: str, value: str | None) -> None: ...

    # -- revisions ----------------------------------------------------------
    def bans_written(self, removed: bool = False) -> int:
        """Count this unit of work's change of the ban list, once however
        often it is called: ``bans_revision`` + 1 (notified at commit:
        storage.notify), the revision of every row it writes; with
        ``removed``, ``bans_removed_revision`` becomes that revision too."""
        revision = self._bans_revision_written
        if revision is None:
            revision = int(self.get_meta("bans_revision") or "0") + 1
            self.set_meta("bans_revision", str(revision))
            self._bans_revision_written = revision
        if removed and not self._bans_removal_written:
            self.set_meta("bans_removed_revision", str(revision))
            self._bans_removal_written = True
        return revision

    def ban_revisions(self) -> tuple[int, int]:
        """(``bans_revision``, ``bans_removed_revision``): the last commit
        that wrote bans, and the last one that removed any (0: never)."""
        # Through get_meta: the fleet's meta values are where it keeps them.
        written = self.get_meta("bans_revision")
        return int(written or 0), int(self.get_meta("bans_removed_revision") or 0)

    def site_shares(self) -> dict[str, str]:
        """Each site's stored ``ips_share`` (sites that never set it share
        ``fleet``: domain.sharing); a stored value no longer valid is left out."""
        rows = self.session.execute(
            select(SettingRow.site, SettingRow.value).where(SettingRow.key == "ips_share")
        ).all()
        shares = {}
        for site, value in rows:
            share = json.loads(value)
            if share in SHARE_MODES:
                shares[site] = share
        return shares

    # -- bans -------------------------------------------------------------
    def bans(self, now: float | None = None, since: int | None = None) -> list[Ban]:
        """Stored bans, those unexpired at ``now`` when given, oldest first;
        with ``since``, only those written after that ban revision."""
        with gc_paused():
            columns = self._ban_columns(_BAN_COLUMNS, now, since)
            if not columns:
                return []
            scopes = {text: scope_from_text(text) for text in set(columns[_SCOPE])}
            columns[_SUBNET] = networks_from_text(columns[_SUBNET])
            columns[_SCOPE] = [scopes[text] for text in columns[_SCOPE]]
            columns[_EXPIRES_AT] = bounded_expiries(columns[_CREATED_AT], columns[_EXPIRES_AT])
            bans = list(map(new_ban, *columns))  # Ban(...), twice as fast
            del columns  # before collection resumes: 14 lists of 10^5 items to traverse
        return bans

    def count_bans(self, now: float) -> int:
        """How many bans are unexpired at ``now`` (one query: a status page
        with 100,000 bans reads none of them)."""
        table = cast_table(BanRow.__table__)
        stmt = select(func.count()).select_from(table).where(table.c.expires_at > now)
        return int(self.session.execute(stmt).scalar_one())

    def kernel_bans(self, now: float, since: int | None = None) -> list[Ban]:
        """``bans(now, since)`` as the agent's kernel sets need them: subnet,
        jail, times, id, origin, node and site read; the scope is the jail's
        (JAIL_SCOPES), and the reason, failure times and counts are left at
        their empty defaults. Half the columns of ``bans``: the agent reads
        100,000 bans at once after an import (its pick-up is benchmarked),
        and never shows these to anyone."""
        with gc_paused():
            columns = self._ban_columns(_KERNEL_COLUMNS, now, since)
            if not columns:
                return []
            subnet, jail, created, expires, id_, origin, node, site = columns
            count = len(subnet)
            scopes = {name: JAIL_SCOPES.get(name, frozenset()) for name in set(jail)}
            bans = list(
                map(
                    new_ban,
                    networks_from_text(subnet),
                    jail,
                    [scopes[name] for name in jail],
                    repeat("", count),
                    created,
                    bounded_expiries(created, expires),
                    repeat(0.0, count),
                    repeat(0.0, count),
                    repeat(0, count),
                    repeat(1, count),
                    id_,
                    origin,
                    node,
                    site,
                )
            )
            del columns, subnet, jail, created, expires, id_, origin, node, site
        return bans

    def _ban_columns(
        self, names: Sequence[str], now: float | None, since: int | None
    ) -> list[Sequence[Any]]:
        """The columns ``names`` (which hold ``created_at``) of the bans
        unexpired at ``now`` and written after ``since``, oldest first, one
        list per column; empty when there is none. Call with collection
        paused (10^5 rows)."""
        # The agent reads every ban on every change of the ban list, so
        # 100,000 bans must load fast: Core rows, not ORM objects; rows in id
        # order (a plain table scan), sorted by creation time here only when
        # they are not already; each column converted at once by the caller.
        table = cast_table(BanRow.__table__)
        stmt = select(*(table.c[name] for name in names)).order_by(table.c.id)
        if now is not None:
            stmt = stmt.where(table.c.expires_at > now)
        if since is not None:
            stmt = stmt.where(table.c.revision > since)
        rows = self.session.execute(stmt).all()
        if not rows:
            return []
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        del rows
        created = columns[names.index("created_at")]
        if any(map(operator.gt, created, islice(created, 1, None))):
            order = sorted(range(len(created)), key=created.__getitem__)  # stable: then id
            columns = [[column[i] for i in order] for column in columns]
        return columns

    def save_ban(self, ban: Ban) -> Ban:
        """Insert, or replace the ban of the same subnet and jail (counted in
        the ban revision: ``bans_written``)."""
        self.session.execute(
            delete(BanRow).where(BanRow.subnet == str(ban.subnet), BanRow.jail == ban.jail)
        )
        row = BanRow(**_ban_values(ban), revision=self.bans_written())
        self.session.add(row)
        self.session.flush()
        return replace(ban, id=row.id)

    def save_bans(self, bans: Sequence[Ban]) -> None:
        """Insert each of ``bans``, or replace the ban of the same subnet and
        jail (the last of ``bans`` wins), in one statement (the agents' batches:
        10,000 bans in about a second, not a round trip each)."""
        if not bans:
            return
        revision = self.bans_written()
        rows = {(str(b.subnet), b.jail): {**_ban_values(b), "revision": revision} for b in bans}
        connection = self.session.connection()
        table = cast_table(BanRow.__table__)
        dialect = connection.dialect.name
        if dialect in ("sqlite", "postgresql"):
            connection.execute(_upsert_statement(table, dialect), list(rows.values()))
            return
        for subnet, jail in rows:  # any other database
            connection.execute(delete(table).where(table.c.subnet == subnet, table.c.jail == jail))
        connection.execute(insert(table), list(rows.values()))

    def save_bans_like(self, subnets: Sequence[str], like: Ban) -> None:
        """Ban each of ``subnets`` (canonical texts, no duplicates) as ``like``
        is banned (its subnet and id aside): insert, or replace the ban of the
        same subnet and jail. The bans import: one statement for them all."""
        if subnets:
            self._upsert_bans(subnets, {**_shared_dict(like), "revision": self.bans_written()})

    def _upsert_bans(self, subnets: Sequence[str], values: dict[str, Any]) -> None:
        connection = self.session.connection()
        dialect = connection.dialect.name
        if dialect == "sqlite" and connection.dialect.driver == "pysqlite" and _sqlite_has_json():
            # The subnets as one JSON array, unpacked by SQLite: 3× faster than
            # executemany, which binds every value of every row from Python.
            connection.exec_driver_sql(
                _SQLITE_UPSERT_FROM_JSON,
                (*(values[c] for c in _WRITTEN_COLUMNS), json.dumps(list(subnets))),
            )
            return
        if dialect == "postgresql":
            # The same on PostgreSQL: the subnets as one text[], unnested by
            # the server (4× faster than executemany for 100,000: 1.2 s instead of 4.5 s).
            connection.execute(_postgresql_upsert(), {"subnets": list(subnets), **values})
            return
        table = cast_table(BanRow.__table__)
        rows = [{"subnet": subnet, **values} for subnet in subnets]
        if dialect == "sqlite":
            connection.execute(_upsert_statement(table, dialect), rows)
            return
        for start in range(0, len(rows), 500):  # any other database
            chunk = rows[start : start + 500]
            connection.execute(
                delete(table).where(
                    table.c.jail == values["jail"],
                    table.c.subnet.in_([row["subnet"] for row in chunk]),
                )
            )
            connection.execute(insert(table), chunk)

    def remove_bans(self, subnet: str, jail: str | None = None) -> list[Ban]:
        """Delete the bans of ``subnet`` (of one jail, or all); return them
        (a removal: ``bans_written(removed=True)``)."""
        stmt = select(BanRow.__table__).where(BanRow.subnet == subnet)
        if jail is not None:
            stmt = stmt.where(BanRow.jail == jail)
        removed = [_ban_from_row(r) for r in self.session.execute(stmt)]
        if removed:
            self.session.execute(delete(BanRow).where(BanRow.id.in_([b.id for b in removed])))
            self.bans_written(removed=True)
        return removed

    def remove_ban_ids(self, ids: Sequence[int]) -> None:
        """Delete these bans (a removal: ``bans_written(removed=True)``)."""
        if ids:
            self.session.execute(delete(BanRow).where(BanRow.id.in_(list(ids))))
            self.bans_written(removed=True)

    def purge_expired_bans(self, now: float) -> int:
        """Delete the lapsed bans: no revision (the kernel's elements lapsed
        by their own timeouts; nothing for the agents to read)."""
        result = self.session.execute(delete(BanRow).where(BanRow.expires_at <= now))
        return int(getattr(result, "rowcount", 0) or 0)


def cast_table(table: Any) -> Table:
    """``Model.__table__`` typed as the Table it is (mypy sees a FromClause)."""
    assert isinstance(table, Table)
    return table


def _ban_from_row(row: Any) -> Ban:
    return Ban(
        # Bans are mostly single IPv4 hosts; the C parser reads those 5× faster.
        subnet=fast_ipv4_host(row.subnet) or ipaddress.ip_network(row.subnet),
        jail=row.jail,
        scope=scope_from_text(row.scope),
        reason=row.reason,
        created_at=row.created_at,
        expires_at=bounded_expiries([row.created_at], [row.expires_at])[0],
        first_failure=row.first_failure,
        last_failure=row.last_failure,
        failures=row.failures,
        offence=row.offence,
        id=row.id,
        origin=row.origin,
        node=row.node,
        site=row.site,
        who=row.who,
    )


def _ban_values(ban: Ban) -> dict[str, Any]:
    return {"subnet": str(ban.subnet), **_shared_dict(ban)}


#: The columns of a ban in the order of Ban's fields (Repository.bans builds
#: each Ban from them positionally).
_BAN_COLUMNS = (
    "subnet",
    "jail",
    "scope",
    "reason",
    "created_at",
    "expires_at",
    "first_failure",
    "last_failure",
    "failures",
    "offence",
    "id",
    "origin",
    "node",
    "site",
)
_SUBNET, _SCOPE, _CREATED_AT, _EXPIRES_AT = 0, 2, 4, 5
#: The columns ``kernel_bans`` reads, in the order it unpacks them.
_KERNEL_COLUMNS = ("subnet", "jail", "created_at", "expires_at", "id", "origin", "node", "site")
#: The columns besides subnet and id, which the bans of one import share.
_SHARED_COLUMNS = tuple(c for c in _BAN_COLUMNS if c not in ("subnet", "id"))
#: ... and ``who`` (written, not read with the ban list: BanService.show
#: reads it), and the revision that writes them.
_WRITTEN_COLUMNS = (*_SHARED_COLUMNS, "who", "revision")


def _shared_dict(ban: Ban) -> dict[str, Any]:
    return {
        "jail": ban.jail,
        "scope": scope_text(ban.scope),
        "reason": ban.reason,
        "created_at": ban.created_at,
        "expires_at": ban.expires_at,
        "first_failure": ban.first_failure,
        "last_failure": ban.last_failure,
        "failures": ban.failures,
        "offence": ban.offence,
        "origin": ban.origin,
        "node": ban.node,
        "site": ban.site,
        "who": ban.who,
    }


# SQLite needs a WHERE in an INSERT … SELECT … ON CONFLICT (a parsing ambiguity).
_SQLITE_UPSERT_FROM_JSON = (
    f"INSERT INTO bans (subnet, {', '.join(_WRITTEN_COLUMNS)}) "
    f"SELECT value, {', '.join('?' for _ in _WRITTEN_COLUMNS)} FROM json_each(?) WHERE true "
    "ON CONFLICT (subnet, jail) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _WRITTEN_COLUMNS if c != "jail")
)


@functools.cache
def _postgresql_upsert() -> Any:
    """INSERT … SELECT FROM unnest(:subnets) ON CONFLICT DO UPDATE: one
    statement, the shared values bound once through their columns' types."""
    table = cast_table(BanRow.__table__)
    statement = sql_text(
        f"INSERT INTO bans (subnet, {', '.join(_WRITTEN_COLUMNS)}) "
        f"SELECT s, {', '.join(f':{c}' for c in _WRITTEN_COLUMNS)} FROM unnest(:subnets) AS s "
        "ON CONFLICT (subnet, jail) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in _WRITTEN_COLUMNS if c != "jail")
    )
    return statement.bindparams(
        bindparam("subnets", type_=ARRAY(Text())),
        *(bindparam(c, type_=table.c[c].type) for c in _WRITTEN_COLUMNS),
    )


def _upsert_statement(table: Table, dialect: str) -> Any:
    """INSERT … ON CONFLICT (subnet, jail) DO UPDATE, for an executemany
    (SQLite's or PostgreSQL's: both spell it so)."""
    from sqlalchemy.dialects import postgresql, sqlite

    stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.subnet, table.c.jail],
        set_={c: stmt.excluded[c] for c in _WRITTEN_COLUMNS if c != "jail"},
    )


@functools.cache
def _sqlite_has_json() -> bool:
    """Is SQLite's JSON support built in (the default since SQLite 3.38)?"""
    import sqlite3

    try:
        with contextlib.closing(sqlite3.connect(":memory:")) as connection:
            connection.execute("SELECT value FROM json_each('[1]')").fetchall()
    except sqlite3.Error:
        return False
    return True
