"""Fetching blocklist feeds (issue 17): HTTP, the checks, the kept list, the status.

``fetch_feed`` is one fetch of one feed: httpx with a connect/read timeout and
a size limit, ``If-None-Match``/``If-Modified-Since`` from the last answer
(plain and JSON lists; APIBAN pages are followed by ``ID`` until ``"none"``).
``refresh_feed`` wraps it: parse, refuse (domain.feed_lists), hold a list
back that shrank by more than 90 %, keep the new list in the state folder
(usecases.feeds ``write_kept``) and say what happened (``FeedStatus``). Every
failure leaves the kept list, and so the kernel, as it was.

Never on the packet path: the agent runs these in a thread of their own
(``FeedWorker``), so a feed server that never answers delays nothing but
the next fetch of that feed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from pbxfw.domain.addresses import IPAddress
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.feed_lists import (
    APIBAN_DONE,
    FeedList,
    held_back,
    parse_apiban_page,
    parse_json_list,
    parse_plain,
    protected_for,
    read_list_text,
    refuse,
)
from pbxfw.domain.feeds import Feed
from pbxfw.storage.feeds import FeedStatus
from pbxfw.usecases.feeds import kept_path, read_kept, write_kept

if TYPE_CHECKING:
    # Imported where a fetch happens: an agent without feeds (and its
    # restart time) never pays for httpx.
    import httpx

__all__ = [
    "DEFAULT_MAX_BYTES",
    "DEFAULT_TIMEOUT",
    "FeedError",
    "Fetched",
    "Refreshed",
    "feed_max_bytes",
    "fetch_feed",
    "refresh_feed",
]

log = logging.getLogger("pbxfw.agent")

#: The default size limit of one answer (all APIBAN pages together).
DEFAULT_MAX_BYTES = 32 * 1024 * 1024
#: Seconds to connect, and between two reads of one answer.
DEFAULT_TIMEOUT = 20.0
#: APIBAN answers a few hundred addresses a page: more pages is a loop.
MAX_APIBAN_PAGES = 1000
#: After a failure, try again this soon (but never later than the feed's period).
RETRY_SECONDS = 300.0


def feed_max_bytes() -> int:
    """The size limit: env ``PBXFW_FEED_MAX_BYTES`` (bytes), else 32 MB."""
    import os

    text = os.environ.get("PBXFW_FEED_MAX_BYTES", "")
    return int(text) if text.isdigit() and int(text) > 0 else DEFAULT_MAX_BYTES


class FeedError(Exception):
    """A fetch that gave no usable list; the message is what ``feed list`` shows."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One fetch's outcome: the list (None when the server said 304) and its validators."""

    parsed: FeedList | None
    etag: str = ""
    last_modified: str = ""


def _read_body(response: httpx.Response, limit: int, already: int = 0) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) + already > limit:
        raise FeedError(f"the answer is {int(declared):,} bytes, over the limit of {limit:,}")
    chunks: list[bytes] = []
    size = already
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > limit:
            raise FeedError(f"the answer is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _text(body: bytes, response: httpx.Response) -> str:
    kind = response.headers.get("content-type", "").lower()
    head = body[:512].lstrip().lower()
    if "html" in kind or head.startswith((b"<!doctype", b"<html", b"<head", b"<body")):
        # An error or login page served with 200 (a captive portal, an
        # expired key): never read its words as addresses.
        raise FeedError("the server answered an HTML page, not a list")
    return body.decode("utf-8", errors="replace")


def _get(
    client: httpx.Client, url: str, headers: dict[str, str], limit: int, already: int = 0
) -> tuple[httpx.Response, bytes]:
    import httpx

    try:
        with client.stream("GET", url, headers=headers) as response:
            if response.status_code == 304:
                return response, b""
            body = _read_body(response, limit, already)
            return response, body
    except httpx.TimeoutException:
        raise FeedError("the server did not answer in time") from None
    except httpx.HTTPError as exc:
        # A truncated body (the connection closed before Content-Length or
        # the last chunk) lands here too.
        raise FeedError(f"fetch failed: {type(exc).__name__}: {exc}") from None


def _plain(feed: Feed, client: httpx.Client, etag: str, last_modified: str, limit: int) -> Fetched:
    headers = dict(feed.headers)
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    response, body = _get(client, feed.url, headers, limit)
    if response.status_code == 304:
        return Fetched(None, etag, last_modified)
    if response.status_code != 200:
        raise FeedError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
    text = _text(body, response)
    if feed.format == "json":
        try:
            parsed = parse_json_list(text)
        except ValueError as exc:
            raise FeedError(f"not a JSON list of addresses: {exc}") from None
    else:
        parsed = parse_plain(text)
    if not parsed.count() and parsed.refused:
        raise FeedError(f"no address in the answer ({sum(parsed.refused.values())} bad lines)")
    return Fetched(
        parsed, response.headers.get("etag", ""), response.headers.get("last-modified", "")
    )


def _apiban(feed: Feed, client: httpx.Client, limit: int) -> Fetched:
    """Follow APIBAN's pages: ``URL``, then ``URL/ID`` until the ID is ``none``
    (a 200, or a 400/404 whose body says ``"ID": "none"``: its clients' end)."""
    base = feed.url.rstrip("/")
    url = base
    addresses: list[str] = []
    size = 0
    for _ in range(MAX_APIBAN_PAGES):
        response, body = _get(client, url, dict(feed.headers), limit, size)
        size += len(body)
        if response.status_code not in (200, 400, 404):
            raise FeedError(f"HTTP {response.status_code} {response.reason_phrase}".strip())
        try:
            page, next_id = parse_apiban_page(_text(body, response))
        except ValueError as exc:
            raise FeedError(f"not an APIBAN page: {exc}") from None
        if response.status_code != 200 and next_id != APIBAN_DONE:
            raise FeedError(f"HTTP {response.status_code}: APIBAN answered ID {next_id!r}")
        addresses += page
        if next_id == APIBAN_DONE:
            return Fetched(read_list_text(addresses))
        url = f"{base}/{next_id}"
    raise FeedError(f"APIBAN gave more than {MAX_APIBAN_PAGES} pages")


def fetch_feed(
    feed: Feed,
    client: httpx.Client,
    *,
    etag: str = "",
    last_modified: str = "",
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Fetched:
    """Fetch and parse ``feed``; FeedError when there is no usable list."""
    if feed.format == "apiban":
        return _apiban(feed, client, max_bytes)
    return _plain(feed, client, etag, last_modified, max_bytes)


@dataclass(slots=True)
class Refreshed:
    """What one refresh did: the new status, and the kept list when it changed."""

    status: FeedStatus
    entries: FeedList | None = None
    previous: FeedList = field(default_factory=FeedList)


def refresh_feed(
    feed: Feed,
    config: Configuration,
    own: Iterable[IPAddress],
    status: FeedStatus,
    state_dir: str | Path,
    now: float,
    client: httpx.Client,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> Refreshed:
    """Fetch ``feed`` once and keep the new list if it is good.

    ``status`` is the feed's last status at this node. A failed fetch, an
    empty or unreadable answer, or a list that shrank by more than 90 % leaves
    the kept list (and the kernel) as it was and says why in the status.
    """
    path = kept_path(state_dir, feed.name)
    previous = read_kept(path) or FeedList()
    done = replace(status, last_fetch=now, next_fetch=now + feed.every)
    try:
        fetched = fetch_feed(
            feed,
            client,
            etag=status.etag if previous else "",
            last_modified=status.last_modified if previous else "",
            max_bytes=max_bytes,
        )
    except FeedError as exc:
        log.warning(
            "feed %s: %s; the last good list (%d entries) stays", feed.name, exc, previous.count()
        )
        done.error = str(exc)
        done.next_fetch = now + min(float(feed.every), RETRY_SECONDS)
        done.entries = previous.count()
        return Refreshed(done, None, previous)
    if fetched.parsed is None:
        done.error, done.held_back, done.last_success = "", False, now
        done.entries = previous.count()
        return Refreshed(done, None, previous)
    kept = refuse(fetched.parsed, protected_for(config, own))
    done.refused = dict(kept.refused)
    if held_back(previous.count(), kept.count()):
        log.warning(
            "feed %s: the list shrank from %d to %d entries at once; held back",
            feed.name,
            previous.count(),
            kept.count(),
        )
        done.held_back = True
        done.error = (
            f"held back: the list shrank from {previous.count()} to {kept.count()} "
            "entries at once (more than 90 %); the last good list stays"
        )
        done.entries = previous.count()
        # Not the validators: the next fetch must see the whole list again.
        return Refreshed(done, None, previous)
    write_kept(path, kept)
    done.error, done.held_back, done.last_success = "", False, now
    done.etag, done.last_modified = fetched.etag, fetched.last_modified
    done.entries = kept.count()
    log.info("feed %s: %d entries, %d refused", feed.name, done.entries, sum(done.refused.values()))
    return Refreshed(done, kept, previous)


class FeedWorker:
    """Runs the feeds' fetches in one thread of its own, off the agent's tick.

    ``due()`` (called by the agent's tick) says which feeds to fetch; the
    thread fetches them one at a time and hands each ``Refreshed`` to
    ``done`` (which stores the status and changes the kernel sets).
    """

    def __init__(self, run: Callable[[Feed], None]) -> None:
        self._run = run
        self._queue: list[Feed] = []
        self._busy: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pbxfw-feeds", daemon=True)
        self._thread.start()

    def submit(self, feed: Feed) -> bool:
        """Queue a fetch of ``feed`` unless one is queued or running."""
        with self._lock:
            if feed.name in self._busy:
                return False
            self._busy.add(feed.name)
            self._queue.append(feed)
        self._wake.set()
        return True

    def busy(self) -> set[str]:
        with self._lock:
            return set(self._busy)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(1.0)
            self._wake.clear()
            while not self._stop.is_set():
                with self._lock:
                    if not self._queue:
                        break
                    feed = self._queue.pop(0)
                try:
                    self._run(feed)
                except Exception:  # a bug in one fetch must not end the thread
                    log.exception("feed %s: refresh failed", feed.name)
                finally:
                    with self._lock:
                        self._busy.discard(feed.name)

    def close(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
