"""The dashboard's and the metrics' aggregate rows (migration 0016): writes and reads.

The agent adds its tallies (agent.tally) in its periodic counter flush: one
upsert statement per table, whatever the number of lines read. The reads
sum at most a few thousand rows (hours × jails × events, days × addresses),
never the raw events, so a page view costs the same with a million
failures recorded as with ten.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Table, delete, func, select
from sqlalchemy.engine import Connection

from pbxfw.storage.attack_users import UserKey, keep_top, top_accounts, user_rows
from pbxfw.storage.models import (
    AttackHourRow,
    AttackSourceRow,
    AttackUserRow,
    BanRow,
    BanTotalRow,
    DropCounterRow,
    FailureTotalRow,
)
from pbxfw.storage.repository import Repository

__all__ = [
    "KEEP_SECONDS",
    "Nodes",
    "Tallies",
    "active_bans_by",
    "add_tallies",
    "ban_totals",
    "drop_counters",
    "failure_totals",
    "failures_per_hour",
    "save_drops",
    "top_sources",
    "top_users",
]

#: How long the hourly and daily rows are kept: the 7-day charts and a day's margin.
KEEP_SECONDS = 8 * 86400

#: (hour, jail, event) → failures
HourKey = tuple[int, str, str]
#: (day, address) → (jail, failures)
SourceKey = tuple[int, str]


class Tallies:
    """What one flush adds: plain mappings, filled by agent.tally."""

    __slots__ = ("bans", "hours", "sources", "totals", "users")

    def __init__(
        self,
        hours: Mapping[HourKey, int],
        sources: Mapping[SourceKey, tuple[str, int]],
        totals: Mapping[tuple[str, str], int],
        bans: Mapping[tuple[str, str], int],
        users: Mapping[UserKey, int] | None = None,
    ) -> None:
        self.hours = hours
        self.sources = sources
        #: (jail, event) → failures
        self.totals = totals
        #: (jail, origin) → bans made
        self.bans = bans
        #: (hour, jail, account tried) → failures (migration 0018)
        self.users: Mapping[UserKey, int] = users if users is not None else {}

    def __bool__(self) -> bool:
        return bool(self.hours or self.sources or self.totals or self.bans or self.users)


def add_tallies(repo: Repository, node: str, tallies: Tallies, now: float) -> None:
    """Inside a write unit of work: add ``tallies`` to ``node``'s rows, and
    drop the hourly and daily rows older than KEEP_SECONDS (any node's)."""
    connection = repo.session.connection()
    hours = AttackHourRow.__table__
    _add(
        connection,
        hours,  # type: ignore[arg-type]
        ["node", "hour", "jail", "event"],
        "failures",
        [
            {"node": node, "hour": h, "jail": j, "event": e, "failures": n}
            for (h, j, e), n in tallies.hours.items()
        ],
    )
    _add(
        connection,
        AttackSourceRow.__table__,  # type: ignore[arg-type]
        ["node", "day", "address"],
        "failures",
        [
            {"node": node, "day": d, "address": a, "jail": j, "failures": n}
            for (d, a), (j, n) in tallies.sources.items()
        ],
        also=("jail",),
    )
    _add(
        connection,
        FailureTotalRow.__table__,  # type: ignore[arg-type]
        ["node", "jail", "event"],
        "failures",
        [
            {"node": node, "jail": j, "event": e, "failures": n}
            for (j, e), n in tallies.totals.items()
        ],
    )
    _add(
        connection,
        BanTotalRow.__table__,  # type: ignore[arg-type]
        ["node", "jail", "origin"],
        "bans",
        [{"node": node, "jail": j, "origin": o, "bans": n} for (j, o), n in tallies.bans.items()],
    )
    users = user_rows(node, tallies.users)
    _add(
        connection,
        AttackUserRow.__table__,  # type: ignore[arg-type]
        ["node", "hour", "jail", "account"],
        "failures",
        users,
    )
    keep_top(connection, node, users)
    if tallies.hours:
        oldest = int(now) - KEEP_SECONDS
        repo.session.execute(delete(AttackHourRow).where(AttackHourRow.hour < oldest))
        repo.session.execute(delete(AttackSourceRow).where(AttackSourceRow.day < oldest))
        repo.session.execute(delete(AttackUserRow).where(AttackUserRow.hour < oldest))


def _add(
    connection: Connection,
    table: Table,
    key: Sequence[str],
    count: str,
    rows: list[dict[str, Any]],
    also: Sequence[str] = (),
) -> None:
    """INSERT … ON CONFLICT (key) DO UPDATE count = count + new (SQLite and
    PostgreSQL spell it alike), one executemany."""
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = connection.dialect.name
    stmt: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c[k] for k in key],
        set_={count: table.c[count] + stmt.excluded[count], **{c: stmt.excluded[c] for c in also}},
    )
    connection.execute(stmt, rows)


class Nodes:
    """Which nodes' rows a read sums: those named (``exclude=False``) or all
    but those named (``exclude=True``)."""

    __slots__ = ("exclude", "names")

    def __init__(self, names: Iterable[str], *, exclude: bool = False) -> None:
        self.names = list(names)
        self.exclude = exclude

    def __contains__(self, name: object) -> bool:
        return (name in self.names) != self.exclude


def _nodes(column: Any, nodes: Nodes | None) -> list[Any]:
    if nodes is None:
        return []
    if nodes.exclude:
        return [column.not_in(nodes.names)] if nodes.names else []
    return [column.in_(nodes.names)]


def failures_per_hour(
    repo: Repository, since: int, nodes: Nodes | None = None
) -> list[tuple[int, str, int]]:
    """(hour, jail, failures) from the hour ``since`` on, summed over ``nodes`` (None: all)."""
    row = AttackHourRow
    query = (
        select(row.hour, row.jail, func.sum(row.failures))
        .where(row.hour >= since, *_nodes(row.node, nodes))
        .group_by(row.hour, row.jail)
        .order_by(row.hour, row.jail)
    )
    return [(int(h), str(j), int(n)) for h, j, n in repo.session.execute(query)]


def top_sources(
    repo: Repository, since: int, limit: int, nodes: Nodes | None = None
) -> list[tuple[str, str, int]]:
    """(address, a jail it failed in, failures) of the ``limit`` addresses
    with most failures from the day ``since`` on, most first."""
    row = AttackSourceRow
    total = func.sum(row.failures)
    query = (
        select(row.address, func.max(row.jail), total)
        .where(row.day >= since, *_nodes(row.node, nodes))
        .group_by(row.address)
        .order_by(total.desc(), row.address)
        .limit(limit)
    )
    return [(str(a), str(j), int(n)) for a, j, n in repo.session.execute(query)]


def top_users(
    repo: Repository, since: int, jails: Iterable[str], limit: int, nodes: Nodes | None = None
) -> list[tuple[str, str, int]]:
    """(account, a jail it was tried in, failures) of the ``limit`` accounts
    tried most in ``jails`` from the hour ``since`` on, most first (migration 0018)."""
    connection = repo.session.connection()
    return top_accounts(connection, since, jails, limit, _nodes(AttackUserRow.node, nodes))


def failure_totals(repo: Repository) -> list[tuple[str, str, str, int]]:
    """(node, jail, event, failures) of every node."""
    row = FailureTotalRow
    query = select(row.node, row.jail, row.event, row.failures)
    return [(str(a), str(b), str(c), int(n)) for a, b, c, n in repo.session.execute(query)]


def ban_totals(repo: Repository) -> list[tuple[str, str, str, int]]:
    """(node, jail, origin, bans made) of every node."""
    row = BanTotalRow
    query = select(row.node, row.jail, row.origin, row.bans)
    return [(str(a), str(b), str(c), int(n)) for a, b, c, n in repo.session.execute(query)]


def save_drops(
    repo: Repository, node: str, drops: Mapping[tuple[str, str], tuple[int, int]], now: float
) -> None:
    """Inside a write unit of work: ``node``'s drop counters are ``drops``
    ((reason, jail) → (packets, bytes)), replacing what it stored before."""
    repo.session.execute(delete(DropCounterRow).where(DropCounterRow.node == node))
    repo.session.add_all(
        DropCounterRow(node=node, reason=r, jail=j, packets=p, bytes=b, updated_at=now)
        for (r, j), (p, b) in sorted(drops.items())
    )
    repo.session.flush()


def drop_counters(
    repo: Repository, nodes: Nodes | None = None
) -> list[tuple[str, str, str, int, int]]:
    """(node, reason, jail, packets, bytes) of ``nodes`` (None: every node)."""
    row = DropCounterRow
    query = (
        select(row.node, row.reason, row.jail, row.packets, row.bytes)
        .where(*_nodes(row.node, nodes))
        .order_by(row.node, row.reason, row.jail)
    )
    return [
        (str(a), str(r), str(j), int(p), int(b)) for a, r, j, p, b in repo.session.execute(query)
    ]


def active_bans_by(repo: Repository, now: float) -> list[tuple[str, str, int]]:
    """(origin, jail, count) of the bans active at ``now``: one grouped query
    (it reads every active ban row: callers cache it, usecases.dashboard)."""
    row = BanRow
    query = (
        select(row.origin, row.jail, func.count())
        .where(row.expires_at > now)
        .group_by(row.origin, row.jail)
        .order_by(row.origin, row.jail)
    )
    return [(str(o), str(j), int(n)) for o, j, n in repo.session.execute(query)]
