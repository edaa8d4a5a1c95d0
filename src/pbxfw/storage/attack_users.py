"""The accounts attackers tried (migration 0018, ``attack_users``): writes and reads.

The agent adds its tallies of (hour, jail, account) in the same flush as the
other aggregates (:func:`pbxfw.storage.aggregates.add_tallies` adds
:func:`user_rows` with its upsert, then calls :func:`keep_top`). The table is bounded whatever a scanner tries: each
(node, hour, jail) keeps the :data:`USERS_PER_HOUR` accounts with most
failures (ties: the smaller name), so a page reads at most 168 hours ×
jails × USERS_PER_HOUR rows per node for its 7-day lists. A name that falls
out of an hour's kept accounts loses that hour's count (the lists are the
top few; docs/observability.md, "Dashboard").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, and_, delete, func, select

from pbxfw.storage.models import AttackUserRow

__all__ = [
    "ACCOUNT_MAX",
    "USERS_PER_HOUR",
    "UserKey",
    "keep_top",
    "storable",
    "top_accounts",
    "user_rows",
]

#: The accounts kept per node, hour and jail.
USERS_PER_HOUR = 100
#: The column's length (``Failure.user`` is cut to it already).
ACCOUNT_MAX = 64

#: (hour, jail, account) → failures
UserKey = tuple[int, str, str]


def storable(account: str) -> str:
    """``account`` as both engines store it unchanged within the column:
    NUL and SOH (which PostgreSQL's text escapes, lengthening it) and lone
    surrogates (which no UTF-8 database takes) become U+FFFD; at most
    ACCOUNT_MAX characters."""
    if not account.isascii():
        # UTF-16 round trip: each lone surrogate becomes one U+FFFD.
        account = account.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if "\x00" in account or "\x01" in account:
        account = account.replace("\x00", "\ufffd").replace("\x01", "\ufffd")
    return account[:ACCOUNT_MAX]


def user_rows(node: str, users: Mapping[UserKey, int]) -> list[dict[str, Any]]:
    """``users`` as ``node``'s rows to add (accounts made :func:`storable`;
    two that become one are summed)."""
    merged: dict[UserKey, int] = {}
    for (hour, jail, account), n in users.items():
        key = (hour, jail, storable(account))
        merged[key] = merged.get(key, 0) + n
    return [
        {"node": node, "hour": h, "jail": j, "account": a, "failures": n}
        for (h, j, a), n in merged.items()
    ]


def keep_top(connection: Connection, node: str, rows: Iterable[Mapping[str, Any]]) -> None:
    """After ``rows`` were added: keep, in each (hour, jail) they touched,
    ``node``'s USERS_PER_HOUR accounts with most failures."""
    row = AttackUserRow
    for hour, jail in sorted({(r["hour"], r["jail"]) for r in rows}):
        group = and_(row.node == node, row.hour == hour, row.jail == jail)
        kept = (
            select(row.account)
            .where(group)
            .order_by(row.failures.desc(), row.account)
            .limit(USERS_PER_HOUR)
        )
        # Only when the group may hold more than it keeps: a count is cheaper
        # than the sort, and most flushes add to the accounts already kept.
        count = connection.execute(select(func.count()).select_from(row).where(group)).scalar_one()
        if count > USERS_PER_HOUR:
            connection.execute(delete(row).where(group, row.account.not_in(kept.scalar_subquery())))


def top_accounts(
    connection: Connection, since: int, jails: Iterable[str], limit: int, nodes: list[Any]
) -> list[tuple[str, str, int]]:
    """(account, a jail it was tried in, failures) of the ``limit`` accounts
    with most failures in ``jails`` from the hour ``since`` on, most first;
    ``nodes``: the where-clauses that select the nodes summed."""
    row = AttackUserRow
    total = func.sum(row.failures)
    query = (
        select(row.account, func.max(row.jail), total)
        .where(row.hour >= since, row.jail.in_(list(jails)), *nodes)
        .group_by(row.account)
        .order_by(total.desc(), row.account)
        .limit(limit)
    )
    return [(str(a), str(j), int(n)) for a, j, n in connection.execute(query)]
