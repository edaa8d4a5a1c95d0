"""Feeds (configuration, site-scoped) and each node's feed status: rows ↔ domain.

Functions over a ``Repository`` (like ``storage/source_status.py``), so the
repository's class stays as it is. Feeds are of the repository's site
(``repo.site``); a status row is of one node (its agent writes it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import delete, func, select

from pbxfw.domain.feeds import Feed
from pbxfw.storage.models import FeedRow, FeedStatusRow
from pbxfw.storage.repository import Repository

__all__ = [
    "FeedStatus",
    "add_feed",
    "feed_statuses",
    "feeds",
    "remove_feed",
    "request_update",
    "save_feed_status",
    "update_requests",
]


@dataclass(slots=True)
class FeedStatus:
    """What a node's agent last did with one feed (times in epoch seconds)."""

    node: str
    feed: str
    last_fetch: float | None = None
    last_success: float | None = None
    next_fetch: float | None = None
    etag: str = ""
    last_modified: str = ""
    entries: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    error: str = ""
    held_back: bool = False

    def as_json(self) -> dict[str, object]:
        return {
            "node": self.node,
            "feed": self.feed,
            "last_fetch": self.last_fetch,
            "last_success": self.last_success,
            "next_fetch": self.next_fetch,
            "entries": self.entries,
            "refused": dict(sorted(self.refused.items())),
            "error": self.error,
            "held_back": self.held_back,
        }


def _feed(row: FeedRow) -> Feed:
    headers = tuple((str(n), str(v)) for n, v in json.loads(row.headers))
    return Feed(
        name=row.name,
        url=row.url,
        format=row.format,
        every=row.every,
        scope=tuple(row.scope.split(",")),
        headers=headers,
        id=row.id,
    )


def feeds(repo: Repository) -> list[Feed]:
    """The site's feeds, in the order they were added."""
    rows = repo.session.scalars(
        select(FeedRow).where(FeedRow.site == repo.site).order_by(FeedRow.id)
    )
    return [_feed(r) for r in rows]


def add_feed(repo: Repository, feed: Feed) -> Feed:
    row = FeedRow(
        site=repo.site,
        name=feed.name,
        url=feed.url,
        format=feed.format,
        every=feed.every,
        scope=",".join(feed.scope),
        headers=json.dumps([list(h) for h in feed.headers]),
    )
    # Ids by hand, as country rules (storage/countries.py): every write holds
    # the one writer's lock.
    row.id = (repo.session.scalar(select(func.max(FeedRow.id))) or 0) + 1
    repo.session.add(row)
    repo.session.flush()
    return feed.with_changes(id=row.id)


def remove_feed(repo: Repository, name: str) -> None:
    """Remove the site's feed ``name`` and every node's status of it."""
    repo.session.execute(delete(FeedRow).where(FeedRow.site == repo.site, FeedRow.name == name))
    repo.session.execute(delete(FeedStatusRow).where(FeedStatusRow.feed == name))


def request_update(repo: Repository, names: list[str], now: float) -> None:
    """Ask the agents to fetch these feeds at their next tick."""
    for row in repo.session.scalars(
        select(FeedRow).where(FeedRow.site == repo.site, FeedRow.name.in_(names))
    ):
        row.update_requested = now
    repo.session.flush()


def update_requests(repo: Repository) -> dict[str, float]:
    """Feed name → when an update was asked for (feeds never asked: absent)."""
    rows = repo.session.execute(
        select(FeedRow.name, FeedRow.update_requested).where(
            FeedRow.site == repo.site, FeedRow.update_requested.is_not(None)
        )
    )
    return {name: float(when) for name, when in rows if when is not None}


def feed_statuses(repo: Repository, node: str | None = None) -> list[FeedStatus]:
    """Every node's feed status (or ``node``'s), by node then feed."""
    query = select(FeedStatusRow).order_by(FeedStatusRow.node, FeedStatusRow.feed)
    if node is not None:
        query = query.where(FeedStatusRow.node == node)
    return [
        FeedStatus(
            node=r.node,
            feed=r.feed,
            last_fetch=r.last_fetch,
            last_success=r.last_success,
            next_fetch=r.next_fetch,
            etag=r.etag,
            last_modified=r.last_modified,
            entries=r.entries,
            refused={str(k): int(v) for k, v in json.loads(r.refused or "{}").items()},
            error=r.error,
            held_back=r.held_back,
        )
        for r in repo.session.scalars(query)
    ]


def save_feed_status(repo: Repository, status: FeedStatus) -> None:
    row = repo.session.get(FeedStatusRow, (status.node, status.feed))
    if row is None:
        row = FeedStatusRow(node=status.node, feed=status.feed)
        repo.session.add(row)
    row.last_fetch = status.last_fetch
    row.last_success = status.last_success
    row.next_fetch = status.next_fetch
    row.etag = status.etag[:1000]
    row.last_modified = status.last_modified[:200]
    row.entries = status.entries
    row.refused = json.dumps(dict(sorted(status.refused.items())))
    row.error = status.error[:2000]
    row.held_back = status.held_back
    repo.session.flush()
