"""The agent's feeds part (issue 17): when to fetch, and the kernel's feed sets.

Every ``FEED_READ_SECONDS`` the agent's tick reads the site's feeds (one
small query), queues the ones due (their period passed, or ``feed update``
asked) on the fetch thread (agent.feeds ``FeedWorker``: never the tick's
own time), and takes the lists that thread finished: their difference goes
to the kernel (kernel.feedsets), and the status to the store. A new or
removed feed, or a change of scope, changes the table's rules: the whole
table is loaded again (``Rules.apply``), carrying every kept list.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial

from pbxfw.agent.feeds import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    FeedWorker,
    Refreshed,
    refresh_feed,
)
from pbxfw.agent.health import Health
from pbxfw.agent.rules import Rules
from pbxfw.compiler.feeds import FeedSet, feed_changes
from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.feed_lists import FeedList
from pbxfw.domain.feeds import Feed
from pbxfw.kernel.feedsets import send_feed_changes
from pbxfw.kernel.nft import NftBackend
from pbxfw.storage.feeds import FeedStatus
from pbxfw.storage.repository import Store
from pbxfw.usecases.feeds import FeedService, kept_path, read_kept

__all__ = ["FEED_READ_SECONDS", "FeedPart"]

log = logging.getLogger("pbxfw.agent")

#: How often the tick reads the feeds and their update requests.
FEED_READ_SECONDS = 2.0


class FeedPart:
    """Schedules the fetches of one node and keeps its kernel feed sets."""

    def __init__(
        self,
        store: Store,
        rules: Rules,
        health: Health,
        *,
        node: str,
        state_dir: str,
        netns: str | None,
        own: Callable[[], list[IPAddress]],
        clock: Callable[[], float] = time.time,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.service = FeedService(store)
        self.rules = rules
        self.health = health
        self.node = node
        self.state_dir = state_dir
        self.netns = netns
        self.own = own
        self.clock = clock
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.feeds: list[Feed] = []
        #: the kept list of each feed, as the kernel holds it
        self.kept: dict[str, FeedList] = {}
        self.statuses: dict[str, FeedStatus] = {}
        self._done: list[tuple[Feed, Refreshed]] = []
        self._lock = threading.Lock()
        self._read_at = -FEED_READ_SECONDS
        self._worker: FeedWorker | None = None
        rules.feed_sets = self.sets
        rules.feed_count = lambda: sum(k.count() for k in self.kept.values())

    # -- what the table carries --------------------------------------------
    def sets(self) -> Sequence[FeedSet]:
        """Every feed's sets with its kept list (a full load of the table)."""
        return [FeedSet(f.name, f.scope, self.kept.get(f.name) or FeedList()) for f in self.feeds]

    # -- the tick -------------------------------------------------------------
    def tick(self) -> None:
        """Read the feeds when due, queue the due fetches, land finished ones."""
        now = self.clock()
        if now - self._read_at >= FEED_READ_SECONDS:
            self._read_at = now
            self._read(now)
        self._land()

    def _read(self, now: float) -> None:
        feeds = self.service.feeds()
        if [(f.name, f.scope) for f in feeds] != [(f.name, f.scope) for f in self.feeds]:
            for feed in feeds:
                if feed.name not in self.kept:
                    kept = read_kept(kept_path(self.state_dir, feed.name))
                    self.kept[feed.name] = kept or FeedList()
            names = {f.name for f in feeds}
            self.kept = {n: k for n, k in self.kept.items() if n in names}
            self.feeds = feeds
            # New sets and rules: the whole table again, with every kept list.
            self.rules.stale = True
            log.info("feeds: %s", ", ".join(f.name for f in feeds) or "none")
        self.feeds = feeds
        if not feeds:
            return
        self.statuses = {s.feed: s for s in self.service.statuses(self.node)}
        requests = self.service.update_requests()
        for feed in feeds:
            status = self.statuses.get(feed.name)
            due = status is None or status.next_fetch is None or status.next_fetch <= now
            asked = requests.get(feed.name)
            if asked is not None and (status is None or (status.last_fetch or 0) < asked):
                due = True
            if due:
                self._start().submit(feed)

    def _start(self) -> FeedWorker:
        if self._worker is None:
            self._worker = FeedWorker(self._fetch)
        return self._worker

    def _fetch(self, feed: Feed) -> None:
        """In the fetch thread: one refresh, its status stored, its list handed over."""
        config = self.rules.config
        if config is None:
            return
        import httpx  # only once there is a feed (docs/benchmarks.md: start-up time)

        status = self.statuses.get(feed.name) or FeedStatus(node=self.node, feed=feed.name)
        with httpx.Client(timeout=self.timeout, follow_redirects=True) as client:
            done = refresh_feed(
                feed,
                config,
                self.own(),
                status,
                self.state_dir,
                self.clock(),
                client,
                max_bytes=self.max_bytes,
            )
        with self._lock:
            self._done.append((feed, done))

    def _land(self) -> None:
        with self._lock:
            finished, self._done = self._done, []
        for feed, done in finished:
            if done.entries is not None and feed.name in self.kept:
                old = self.kept[feed.name]
                self.kept[feed.name] = done.entries
                self.health.run(f"feed:{feed.name}", partial(self._send, feed, old, done))
            self.statuses[feed.name] = done.status
            self.health.run("agent:feed-status", partial(self.service.save_status, done.status))

    def _send(self, feed: Feed, old: FeedList, done: Refreshed) -> None:
        assert done.entries is not None
        if self.rules.stale or not isinstance(self.rules.backend, NftBackend):
            self.rules.stale = True  # the next load carries the new list
            return
        delta = feed_changes(feed.name, old, done.entries)
        try:
            sent = send_feed_changes(delta, self.netns)
        except Exception:
            self.rules.stale = True  # the whole table again, with the kept lists
            raise
        log.info("feed %s: %d elements changed in the kernel", feed.name, sent)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.close()
