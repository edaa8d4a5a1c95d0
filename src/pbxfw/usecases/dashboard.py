"""The dashboard: what is attacking this site, from where, and how the agents are.

The agent writes the aggregates (:func:`record_tallies`, :func:`record_drops`:
migration 0016) in its periodic counter flush; :func:`read_dashboard` sums
them for the page. It never reads raw events, so a page view costs a few
small grouped queries whatever the number of failures recorded
(docs/observability.md, "Dashboard").
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field

from pbxfw.domain.addresses import parse_address
from pbxfw.domain.geo import CountryTable
from pbxfw.domain.jails import DERIVED_JAILS, JAIL_SCOPES
from pbxfw.domain.nodes import DEFAULT_SITE, STALE_SECONDS
from pbxfw.domain.sources import SourceStatus
from pbxfw.errors import PbxfwError
from pbxfw.storage.aggregates import (
    Nodes,
    Tallies,
    active_bans_by,
    add_tallies,
    drop_counters,
    failures_per_hour,
    save_drops,
    top_sources,
    top_users,
)
from pbxfw.storage.nodes import nodes
from pbxfw.storage.repository import Repository, Store
from pbxfw.storage.source_status import source_statuses

__all__ = [
    "BANS_CACHE_SECONDS",
    "EXTENSION_JAILS",
    "USER_JAILS",
    "Dashboard",
    "NodeHealth",
    "Tallies",
    "TopAccount",
    "TopSource",
    "cached_active_bans",
    "read_dashboard",
    "record_drops",
    "record_tallies",
]

HOUR = 3600
DAY = 86400
TOP = 10

#: The jails whose failures name an extension or number (SIP and IAX: the
#: From user, the AccountID, the extension dialled); in every other jail fed
#: by logs (ssh, web, ami) the account is a user name.
EXTENSION_JAILS = frozenset({"asterisk"})
USER_JAILS = frozenset(JAIL_SCOPES) - DERIVED_JAILS - EXTENSION_JAILS


def record_tallies(store: Store, node: str, tallies: Tallies, now: float) -> None:
    """Add what ``node``'s agent counted since its last flush (one transaction)."""
    with store.write() as repo:
        add_tallies(repo, node, tallies, now)


def record_drops(
    store: Store, node: str, drops: Mapping[tuple[str, str], tuple[int, int]], now: float
) -> None:
    """``node``'s table's drop counters as just read (one transaction)."""
    with store.write() as repo:
        save_drops(repo, node, drops, now)


@dataclass(frozen=True, slots=True)
class TopSource:
    address: str
    #: ISO 3166 code, "" when no country database is loaded or it has no range
    country: str
    jail: str
    failures: int


@dataclass(frozen=True, slots=True)
class TopAccount:
    """An account attackers tried: a user name or an extension, as the
    daemon wrote it (display data: the page escapes it)."""

    account: str
    #: a jail it was tried in
    jail: str
    failures: int


@dataclass(frozen=True, slots=True)
class NodeHealth:
    name: str
    last_seen: float
    stale: bool
    lag_bytes: int
    last_error: str
    failing: list[SourceStatus] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Dashboard:
    """The page's figures, read at ``now`` (epoch seconds)."""

    now: float
    #: hour starts of the 24-hour chart (oldest first), and of the 7-day one
    hours: list[int]
    week: list[int]
    #: (hour, jail) → failures over the last 7 days
    per_hour: dict[tuple[int, str], int]
    jails: list[str]
    top: list[TopSource]
    bans_by_origin: list[tuple[str, int]]
    #: (reason, jail, packets, bytes), summed over the site's nodes
    drops: list[tuple[str, str, int, int]]
    nodes: list[NodeHealth]
    #: a country database is loaded (the top list can name countries)
    geo: bool
    #: the user names (ssh, web, ami) tried most: last 24 hours, last 7 days
    users_day: list[TopAccount] = field(default_factory=list)
    users_week: list[TopAccount] = field(default_factory=list)
    #: the extensions and numbers (SIP, IAX) tried most: 24 hours, 7 days
    extensions_day: list[TopAccount] = field(default_factory=list)
    extensions_week: list[TopAccount] = field(default_factory=list)

    def series(self, hours: list[int]) -> dict[str, list[int]]:
        """jail → failures per hour of ``hours``."""
        return {j: [self.per_hour.get((h, j), 0) for h in hours] for j in self.jails}


def read_dashboard(store: Store, now: float) -> Dashboard:
    """The dashboard of ``store``'s site at ``now``: a few grouped queries over
    the aggregates of migrations 0016 and 0018 (one read unit of work)."""
    current = int(now) - int(now) % HOUR
    hours = [current - HOUR * i for i in range(23, -1, -1)]
    week = [current - HOUR * i for i in range(7 * 24 - 1, -1, -1)]
    today = int(now) - int(now) % DAY
    with store.read() as repo:
        members = _site_nodes(repo, store.site)
        per_hour = {(h, j): n for h, j, n in failures_per_hour(repo, week[0], members)}
        top = top_sources(repo, today - 6 * DAY, TOP, members)
        origins: dict[str, int] = {}
        for origin, _jail, n in cached_active_bans(repo, now):
            origins[origin] = origins.get(origin, 0) + n
        drops: dict[tuple[str, str], tuple[int, int]] = {}
        for _node, reason, jail, p, b in drop_counters(repo, members):
            before = drops.get((reason, jail), (0, 0))
            drops[(reason, jail)] = (before[0] + p, before[1] + b)
        health = _health(repo, members, now)
        table = _countries(repo) if top else None
        accounts = {
            (kind, start): [
                TopAccount(a, j, n) for a, j, n in top_users(repo, start, jails, TOP, members)
            ]
            for kind, jails in (("users", USER_JAILS), ("extensions", EXTENSION_JAILS))
            for start in (hours[0], week[0])
        }
    return Dashboard(
        now=now,
        hours=hours,
        week=week,
        per_hour=per_hour,
        jails=sorted({j for _h, j in per_hour}),
        top=[TopSource(a, _country(table, a), j, n) for a, j, n in top],
        bans_by_origin=sorted(origins.items(), key=lambda o: (-o[1], o[0])),
        drops=[(r, j, p, b) for (r, j), (p, b) in sorted(drops.items())],
        nodes=health,
        geo=table is not None,
        users_day=accounts["users", hours[0]],
        users_week=accounts["users", week[0]],
        extensions_day=accounts["extensions", hours[0]],
        extensions_week=accounts["extensions", week[0]],
    )


def _site_nodes(repo: Repository, site: str) -> Nodes:
    """The site's nodes; for the site ``default``, every node but those of
    the other sites (a node not registered, or removed, counts there)."""
    every = nodes(repo)
    if site == DEFAULT_SITE:
        return Nodes([n.name for n in every if n.site != site], exclude=True)
    return Nodes([n.name for n in every if n.site == site])


def _health(repo: Repository, members: Nodes, now: float) -> list[NodeHealth]:
    failing: dict[str, list[SourceStatus]] = {}
    for status in source_statuses(repo, None):
        if not status.ok and status.node in members:
            failing.setdefault(status.node, []).append(status)
    return [
        NodeHealth(
            n.name,
            n.last_seen,
            now - n.last_seen >= STALE_SECONDS,
            n.log_lag_bytes,
            n.last_error,
            failing.get(n.name, []),
        )
        for n in nodes(repo)
        if n.name in members
    ]


# The active bans' count per origin reads every active ban row (100,000 bans:
# ~100 ms on a loaded machine): made again at most every BANS_CACHE_SECONDS,
# and only when a ban was written or removed meanwhile or the count is that
# old (bans also end by expiring, which moves no revision).
BANS_CACHE_SECONDS = 10.0
_bans_cached: dict[str, tuple[float, list[tuple[str, str, int]]]] = {}


def cached_active_bans(repo: Repository, now: float) -> list[tuple[str, str, int]]:
    """(origin, jail, count) of the active bans, from a cache kept per
    database for BANS_CACHE_SECONDS (the dashboard and the web server's
    metrics may lag that long behind a ban)."""
    key = str(repo.session.connection().engine.url)
    with _lock:
        found = _bans_cached.get(key)
    if found is not None and 0 <= now - found[0] < BANS_CACHE_SECONDS:
        return found[1]  # at most BANS_CACHE_SECONDS old, whatever was written since
    counted = active_bans_by(repo, now)
    with _lock:
        _bans_cached[key] = (now, counted)
    return counted


# The country table is unpacked once per loaded database, not per page view.
_lock = threading.Lock()
_cached: dict[tuple[str, float], CountryTable] = {}


def _countries(repo: Repository) -> CountryTable | None:
    info = repo.geo_info()
    if info is None:
        return None
    key = (str(repo.session.connection().engine.url), info.loaded_at)
    with _lock:
        table = _cached.get(key)
    if table is None:
        table = repo.geo_table()
        if table is None:
            return None
        with _lock:
            _cached.clear()
            _cached[key] = table
    return table


def _country(table: CountryTable | None, address: str) -> str:
    if table is None:
        return ""
    try:
        return table.code(parse_address(address)) or ""
    except (ValueError, PbxfwError):
        return ""
