"""Blocklist feeds (issue 17): add, list, remove, ask for an update; the kept lists.

Feeds are part of a site's configuration (``storage/feeds.py``) but not of
the applied document: the agent reads them every few seconds and fetches on
its own schedule, so a feed change needs no apply. Each node's agent writes
what it did with each feed (``FeedStatus``), and keeps the last good list of
each feed in its state folder (``<state>/feeds/<name>.list``, packed:
``write_kept``; written atomically): it is what the kernel holds, it survives a
restart and a failed fetch, and ``check`` and ``bans list --origin feed:NAME``
read it (docs/countries-and-feeds.md, "Where the lists are kept").
"""

from __future__ import annotations

import os
import struct
import sys
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pbxfw.domain.addresses import parse_address
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.decision import Decision
from pbxfw.domain.feed_lists import Entry, FeedList, entry_text, read_list_text
from pbxfw.domain.feeds import Feed, feed_json, validate_feed
from pbxfw.domain.whitelist import Whitelist
from pbxfw.errors import NotFoundError
from pbxfw.storage import feeds as rows
from pbxfw.storage.feeds import FeedStatus
from pbxfw.storage.repository import Store
from pbxfw.usecases.base import stored_configuration

__all__ = [
    "FeedHit",
    "FeedService",
    "FeedView",
    "find_in",
    "kept_path",
    "read_kept",
    "write_kept",
]

_BITS = {4: 32, 6: 128}


def kept_path(state_dir: str | os.PathLike[str], name: str) -> Path:
    """Where a node keeps the last good list of feed ``name``."""
    return Path(state_dir) / "feeds" / f"{name}.list"


# The kept list: a header, the IPv4 addresses as little-endian 32-bit
# integers, the IPv6 ones as 16 big-endian bytes each, then the CIDR blocks
# as text. Binary because a million addresses as text cost seconds to write
# and read back; the header's counts catch a cut file.
_MAGIC = b"PBXFW-FEED-1\n"
_HEAD = struct.Struct("<QQQ")


def write_kept(path: Path, kept: FeedList) -> None:
    """Keep ``kept`` in ``path``: a reader sees the old list or the new one."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    v4 = array("I", kept.hosts[4])
    if sys.byteorder == "big":
        v4.byteswap()
    v6 = b"".join(h.to_bytes(16, "big") for h in kept.hosts[6])
    nets = "\n".join(entry_text(e) for e in kept.nets).encode()
    data = _MAGIC + _HEAD.pack(len(kept.hosts[4]), len(kept.hosts[6]), len(nets))
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.write(v4.tobytes())
        handle.write(v6)
        handle.write(nets)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_kept(path: Path) -> FeedList | None:
    """The kept list, or None when there is none (or it is damaged: logged
    by the caller's next fetch, which writes it again)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    head = len(_MAGIC) + _HEAD.size
    if not data.startswith(_MAGIC) or len(data) < head:
        return None
    n4, n6, n_nets = _HEAD.unpack_from(data, len(_MAGIC))
    if len(data) != head + 4 * n4 + 16 * n6 + n_nets:
        return None
    v4 = array("I")
    v4.frombytes(data[head : head + 4 * n4])
    if sys.byteorder == "big":
        v4.byteswap()
    at = head + 4 * n4
    v6 = [int.from_bytes(data[i : i + 16], "big") for i in range(at, at + 16 * n6, 16)]
    at += 16 * n6
    nets = read_list_text(data[at:].decode().split()).nets
    return FeedList({4: v4.tolist(), 6: v6}, nets)


@dataclass(frozen=True, slots=True)
class FeedView:
    """A feed with what each node last did with it (``feed list``)."""

    feed: Feed
    statuses: tuple[FeedStatus, ...]

    def as_json(self) -> dict[str, object]:
        return feed_json(self.feed) | {"status": [s.as_json() for s in self.statuses]}


@dataclass(frozen=True, slots=True)
class FeedHit:
    """An address found in a feed's kept list: the feed and the entry holding it."""

    feed: Feed
    entry: str


def find_in(kept: FeedList, version: int, value: int) -> Entry | None:
    """The entry of a kept list that holds the address, or None."""
    hosts = kept.hosts[version]
    i = bisect_left(hosts, value)
    if i < len(hosts) and hosts[i] == value:
        return (version, value, _BITS[version])
    # Kept blocks are sorted and disjoint: only the last one starting at or
    # before the address can hold it.
    i = bisect_right(kept.nets, (version, value, _BITS[version])) - 1
    if i >= 0 and kept.nets[i][0] == version:
        _, first, prefix = kept.nets[i]
        if value <= first | ((1 << (_BITS[version] - prefix)) - 1):
            return kept.nets[i]
    return None


class FeedService:
    """The feed use cases over one Store, for one site."""

    def __init__(self, store: Store, site: str | None = None) -> None:
        self.store = store if site is None else store.at_site(site)

    def feeds(self) -> list[Feed]:
        with self.store.read() as repo:
            return rows.feeds(repo)

    def feed(self, name: str) -> Feed:
        """A feed by name or id; NotFoundError (404, exit 1) otherwise."""
        for feed in self.feeds():
            if feed.name == name.strip().lower() or str(feed.id) == name:
                return feed
        raise NotFoundError(f"no feed {name!r}; see `pbxfw feed list`")

    def add(
        self,
        name: str,
        url: str,
        *,
        format: str = "plain",
        every: str | int = "4h",
        scope: str | Sequence[str] = "all",
        headers: Sequence[str] = (),
    ) -> Feed:
        """Validate and store a feed (one transaction). ValidationError: nothing stored."""
        with self.store.write() as repo:
            config = stored_configuration(repo)
            feed = validate_feed(
                name,
                url,
                format=format,
                every=every,
                scope=scope,
                headers=headers,
                others=rows.feeds(repo),
                service_keys=config.service_keys(),
            )
            return rows.add_feed(repo, feed)

    def remove(self, name: str) -> Feed:
        """Remove a feed; the agents drop its sets at their next look."""
        feed = self.feed(name)
        with self.store.write() as repo:
            rows.remove_feed(repo, feed.name)
        return feed

    def request_update(self, name: str | None, now: float) -> list[Feed]:
        """Ask the agents to fetch ``name`` (or every feed) at their next tick."""
        chosen = [self.feed(name)] if name is not None else self.feeds()
        with self.store.write() as repo:
            rows.request_update(repo, [f.name for f in chosen], now)
        return chosen

    def update_requests(self) -> dict[str, float]:
        with self.store.read() as repo:
            return rows.update_requests(repo)

    def statuses(self, node: str | None = None) -> list[FeedStatus]:
        with self.store.read() as repo:
            return rows.feed_statuses(repo, node)

    def save_status(self, status: FeedStatus) -> None:
        with self.store.write() as repo:
            rows.save_feed_status(repo, status)

    def views(self) -> list[FeedView]:
        """Every feed with each node's status of it (``feed list``, the page)."""
        with self.store.read() as repo:
            feeds = rows.feeds(repo)
            statuses = rows.feed_statuses(repo)
        return [FeedView(f, tuple(s for s in statuses if s.feed == f.name)) for f in feeds]

    def entries(self, name: str, state_dir: str | os.PathLike[str]) -> list[str]:
        """The entries of feed ``name`` this node enforces (its kept list)."""
        feed = self.feed(name)
        kept = read_kept(kept_path(state_dir, feed.name)) or FeedList()
        return [entry_text(e) for e in kept.entries]

    def decide(
        self, config: Configuration, address: str, service: str, state_dir: str | os.PathLike[str]
    ) -> tuple[Decision, FeedHit] | None:
        """The feed's answer for ``check`` (DESIGN §7: after loopback, before the
        bans and networks; never-block networks and the whitelist win), or
        None when no feed blocks ``address`` for ``service``."""
        ip = parse_address(address)
        if ip.is_loopback or Whitelist(config).covers(ip):
            return None
        hit = self.find(address, state_dir, service=service)
        if hit is None:
            return None
        reason = f"blocked: feed {hit.feed.name} (entry {hit.entry})"
        return Decision(str(ip), service, "block", None, reason), hit

    def find(
        self, address: str, state_dir: str | os.PathLike[str], *, service: str | None = None
    ) -> FeedHit | None:
        """The first feed (in the order added) whose kept list holds ``address``
        (with ``service``: among the feeds whose scope covers it)."""
        ip = parse_address(address)
        for feed in self.feeds():
            if service is not None and not (feed.everything or service in feed.scope):
                continue
            kept = read_kept(kept_path(state_dir, feed.name)) or FeedList()
            hit = find_in(kept, ip.version, int(ip))
            if hit is not None:
                return FeedHit(feed, entry_text(hit))
        return None
