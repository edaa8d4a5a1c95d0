"""Rows of ``notify_channels`` and ``notify_status`` (migration 0017) ↔ domain.notifications.

Kept apart from repository.py (functions over a ``Repository``'s session, like
storage/source_status.py). The channels are a site's configuration: every read
and write is of the repository's site. The statuses are the rows each node's
agent owns.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import delete, func, select

from pbxfw.domain.notifications import Channel, ChannelStatus
from pbxfw.storage.models import NotifyChannelRow, NotifyStatusRow
from pbxfw.storage.repository import Repository

__all__ = [
    "add_channel",
    "channel_statuses",
    "channels",
    "remove_channel",
    "save_channel_statuses",
]


def channels(repo: Repository) -> list[Channel]:
    """The site's channels, in the order they were added."""
    rows = repo.session.scalars(
        select(NotifyChannelRow)
        .where(NotifyChannelRow.site == repo.site)
        .order_by(NotifyChannelRow.id)
    )
    return [Channel(r.name, r.url, r.template, id=r.id) for r in rows]


def add_channel(repo: Repository, channel: Channel, now: float) -> Channel:
    # The next id by hand, as the other configuration rows (storage/countries.py).
    next_id = (repo.session.scalar(select(func.max(NotifyChannelRow.id))) or 0) + 1
    row = NotifyChannelRow(
        id=next_id,
        site=repo.site,
        name=channel.name,
        url=channel.url,
        template=channel.template,
        created_at=now,
    )
    repo.session.add(row)
    repo.session.flush()
    return Channel(channel.name, channel.url, channel.template, id=row.id)


def remove_channel(repo: Repository, channel: Channel) -> None:
    """Delete the channel and what every node kept of it."""
    repo.session.execute(delete(NotifyChannelRow).where(NotifyChannelRow.id == channel.id))
    repo.session.execute(
        delete(NotifyStatusRow).where(
            NotifyStatusRow.site == repo.site, NotifyStatusRow.channel == channel.name
        )
    )


def channel_statuses(repo: Repository, node: str | None = None) -> list[ChannelStatus]:
    """The site's channel statuses of ``node`` (None: of every node)."""
    query = select(NotifyStatusRow).where(NotifyStatusRow.site == repo.site)
    if node is not None:
        query = query.where(NotifyStatusRow.node == node)
    return [
        ChannelStatus(
            r.channel,
            r.node,
            r.last_sent_at,
            r.last_error,
            r.last_error_at,
            r.sent,
            r.failed,
            r.dropped,
            r.digest_at,
            r.updated_at,
        )
        for r in repo.session.scalars(query.order_by(NotifyStatusRow.channel, NotifyStatusRow.node))
    ]


def save_channel_statuses(repo: Repository, statuses: Iterable[ChannelStatus]) -> None:
    """Insert or replace each status (of its node, in the repository's site)."""
    for s in statuses:
        repo.session.execute(
            delete(NotifyStatusRow).where(
                NotifyStatusRow.node == s.node,
                NotifyStatusRow.site == repo.site,
                NotifyStatusRow.channel == s.channel,
            )
        )
        repo.session.add(
            NotifyStatusRow(
                node=s.node,
                site=repo.site,
                channel=s.channel,
                last_sent_at=s.last_sent_at,
                last_error=s.last_error,
                last_error_at=s.last_error_at,
                sent=s.sent,
                failed=s.failed,
                dropped=s.dropped,
                digest_at=s.digest_at,
                updated_at=s.updated_at,
            )
        )
    repo.session.flush()
