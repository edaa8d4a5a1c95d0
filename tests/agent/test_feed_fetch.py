"""Fetching feeds from a real HTTP server on loopback (issue 17 acceptance).

Good feeds (plain with comments, APIBAN pages, a JSON list, ETag → 304) and
broken ones (an HTML error page, HTTP 500, a truncated body, 50 MB over the
limit, a server that never answers, an empty answer, a list that shrank by
more than 90 %, a list holding 0.0.0.0/0, the PBX's own address and a
never-block network). In every broken case the last good list stays (in the
state folder, what the kernel holds), the status says what went wrong, and
nothing broader than the feed's good entries is kept.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pbxfw.agent.feeds import Refreshed, refresh_feed
from pbxfw.domain.configuration import Configuration
from pbxfw.domain.feed_lists import entry_text
from pbxfw.domain.feeds import Feed
from pbxfw.domain.networks import permanent_networks
from pbxfw.domain.settings import Settings
from pbxfw.storage.feeds import FeedStatus
from pbxfw.usecases.feeds import kept_path, read_kept
from tests.agent.feed_server import FeedServer, Page
from tests.kernel.configs import network

OWN = ipaddress.ip_address("203.0.113.1")
GOOD = b"""# Spamhaus DROP style
; comment line
198.51.100.0/24 ; SBL000001
192.0.2.7   # trailing comment
192.0.2.8
2001:db8:5::/48
"""
GOOD_ENTRIES = ["192.0.2.7", "192.0.2.8", "198.51.100.0/24", "2001:db8:5::/48"]


def config() -> Configuration:
    nets = (
        *permanent_networks(),
        network("Office", "10.20.0.0/16", "*", never_block=True),
        network("LAN", "192.168.0.0/16", "*", local=True),
    )
    settings = Settings.model_validate({"firewall_enabled": True, "ips_whitelist": "100.64.0.9"})
    return Configuration(nets, (), settings)


class Runner:
    def __init__(self, server: FeedServer, state: Path) -> None:
        self.server = server
        self.state = state
        self.status = FeedStatus(node="n1", feed="f")
        self.now = 1000.0

    def feed(self, path: str, format: str = "plain") -> Feed:
        return Feed("f", self.server.url(path), format, 3600, ("sip",))

    def run(
        self, path: str, format: str = "plain", *, timeout: float = 2.0, limit: int = 1 << 20
    ) -> Refreshed:
        self.now += 10
        with httpx.Client(timeout=timeout) as client:
            done = refresh_feed(
                self.feed(path, format),
                config(),
                [OWN],
                self.status,
                self.state,
                self.now,
                client,
                max_bytes=limit,
            )
        self.status = done.status
        return done

    def kept(self) -> list[str]:
        kept = read_kept(kept_path(self.state, "f"))
        return [] if kept is None else [entry_text(e) for e in kept.entries]


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    with FeedServer() as server:
        yield Runner(server, tmp_path / "state")


def test_a_plain_list_is_kept_and_an_unchanged_one_is_not_fetched_again(runner: Runner) -> None:
    runner.server.serve("/drop.txt", Page(GOOD, etag='"v1"'))
    done = runner.run("/drop.txt")
    assert done.status.error == ""
    assert runner.kept() == GOOD_ENTRIES
    assert done.status.entries == 4
    assert done.status.next_fetch == runner.now + 3600
    # The ETag goes back; the server answers 304 and the list stays.
    done = runner.run("/drop.txt")
    assert runner.server.requests[-1][1].get("If-None-Match") == '"v1"'
    assert done.entries is None
    assert (done.status.error, done.status.entries) == ("", 4)
    assert runner.kept() == GOOD_ENTRIES


def test_apiban_pages_are_followed_until_the_id_none(runner: Runner) -> None:
    page = {"ipaddress": ["192.0.2.1", "192.0.2.2"], "ID": "1001"}
    runner.server.serve("/api/KEY/banned", Page(json.dumps(page).encode()))
    page2 = {"ipaddress": ["192.0.2.3"], "ID": "1002"}
    runner.server.serve("/api/KEY/banned/1001", Page(json.dumps(page2).encode()))
    end = {"ipaddress": ["no new bans"], "ID": "none"}
    runner.server.serve("/api/KEY/banned/1002", Page(json.dumps(end).encode(), status=400))
    done = runner.run("/api/KEY/banned", "apiban")
    assert done.status.error == ""
    assert runner.kept() == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert list(runner.server.paths()) == [
        "/api/KEY/banned",
        "/api/KEY/banned/1001",
        "/api/KEY/banned/1002",
    ]


def test_a_json_list_of_strings(runner: Runner) -> None:
    runner.server.serve("/l.json", Page(b'["192.0.2.1", "198.51.100.0/24", 7, "nope"]'))
    done = runner.run("/l.json", "json")
    assert runner.kept() == ["192.0.2.1", "198.51.100.0/24"]
    assert done.status.refused == {"malformed": 2}


def test_refused_entries_are_counted_by_reason_and_never_kept(runner: Runner) -> None:
    body = b"""0.0.0.0/0
10.0.0.0/7
::/0
203.0.113.1
127.0.0.1
10.20.30.40
10.0.0.0/8
100.64.0.9
192.168.1.5
192.0.2.7
not an address
192.0.2.9/24
"""
    runner.server.serve("/bad.txt", Page(body))
    done = runner.run("/bad.txt")
    assert runner.kept() == ["192.0.2.7"]
    assert done.status.refused == {
        "too broad": 3,  # 0.0.0.0/0, 10.0.0.0/7, ::/0
        "own address": 1,
        "loopback": 1,
        "never-block": 2,  # 10.20.30.40, and 10.0.0.0/8 holding the Office network
        "whitelist": 1,
        "local network": 1,
        "malformed": 2,  # a word, and host bits set
    }


@pytest.mark.parametrize(
    ("page", "limit", "message"),
    [
        (
            Page(b"<html><body>Error</body></html>", headers={"Content-Type": "text/html"}),
            0,
            "HTML",
        ),
        (Page(b"<!DOCTYPE html><p>login</p>"), 0, "HTML"),
        (Page(b"oops", status=500), 0, "HTTP 500"),
        (Page(b"192.0.2.1\n192.0.2.2\n" * 10, truncate=15), 0, "fetch failed"),
        (Page(size=50 * 1024 * 1024), 32 * 1024 * 1024, "over the limit"),
        (Page(hang=True), 0, "did not answer in time"),
        (Page(b"garbage\nwords\n"), 0, "no address"),
    ],
    ids=["html", "html-200", "500", "truncated", "50MB", "never-answers", "garbage"],
)
def test_a_broken_answer_keeps_the_last_good_list(
    runner: Runner, page: Page, limit: int, message: str
) -> None:
    runner.server.serve("/list", Page(GOOD))
    assert runner.run("/list").status.error == ""
    runner.server.serve("/list", page)
    done = runner.run("/list", timeout=1.0, limit=limit or 1 << 20)
    assert message in done.status.error, done.status.error
    assert done.entries is None
    assert runner.kept() == GOOD_ENTRIES
    assert done.status.entries == 4
    # Tried again soon, not after the whole period.
    assert done.status.next_fetch is not None and done.status.next_fetch <= runner.now + 300


def test_a_list_that_shrinks_by_more_than_90_percent_is_held_back(runner: Runner) -> None:
    many = "".join(f"192.0.2.{i}\n" for i in range(1, 101)).encode()
    runner.server.serve("/list", Page(many))
    runner.run("/list")
    runner.server.serve("/list", Page(b"192.0.2.1\n"))
    done = runner.run("/list")
    assert done.status.held_back
    assert "held back" in done.status.error
    assert len(runner.kept()) == 100
    # An empty answer is the same case.
    runner.server.serve("/list", Page(b"# nothing today\n"))
    done = runner.run("/list")
    assert done.status.held_back
    assert len(runner.kept()) == 100
    # A list of 10 % or more replaces it.
    runner.server.serve("/list", Page(many[: many.index(b"192.0.2.11\n")]))
    done = runner.run("/list")
    assert not done.status.held_back and done.status.error == ""
    assert len(runner.kept()) == 10
