"""``pbxfw feed …``, ``check`` naming a feed and ``bans list --origin feed:NAME`` (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbxfw.domain.feed_lists import parse_plain
from pbxfw.usecases.feeds import kept_path, write_kept
from tests.helpers import Cli


def test_feeds_are_added_listed_asked_for_and_removed(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    added = cli(
        "feed", "add", "apiban", "https://apiban.org/api/KEY/banned", "--format", "apiban",
        "--every", "30m", "--scope", "sip,iax", "--header", "X-Key: secret", "--json",
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    assert json.loads(added.stdout)["headers"] == ["X-Key: ***"]
    assert cli("feed", "add", "drop", "https://www.spamhaus.org/drop/drop.txt").exit_code == 0
    listed = json.loads(cli("feed", "list", "--json").stdout)
    assert [(f["name"], f["format"], f["every"], f["scope"]) for f in listed] == [
        ("apiban", "apiban", "30m", ["iax", "sip"]),
        ("drop", "plain", "4h", ["all"]),
    ]
    assert [f["status"] for f in listed] == [[], []]
    text = cli("feed", "list").stdout
    assert "not fetched yet" in text
    assert "apiban, drop" in cli("feed", "update").stdout
    assert "drop" in cli("feed", "update", "drop").stdout
    assert cli("feed", "rm", "apiban").exit_code == 0
    assert [f["name"] for f in json.loads(cli("feed", "list", "--json").stdout)] == ["drop"]


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("Bad Name", "https://a/"), "name:"),
        (("ok", "file:///etc/passwd"), "url:"),
        (("ok", "https://a/", "--format", "xml"), "format:"),
        (("ok", "https://a/", "--every", "1m"), "every:"),
        (("ok", "https://a/", "--scope", "sip,nope"), "scope:"),
        (("ok", "https://a/", "--header", "nocolon"), "headers[0]:"),
    ],
)
def test_bad_input_exits_2_naming_the_field_and_stores_nothing(
    cli: Cli, args: tuple[str, ...], field: str
) -> None:
    assert cli("init").exit_code == 0
    assert cli("feed", "add", "first", "https://a/").exit_code == 0
    before = cli("feed", "list", "--json").stdout
    result = cli("feed", "add", *args)
    assert result.exit_code == 2
    assert field in result.stderr
    assert cli("feed", "list", "--json").stdout == before
    duplicate = cli("feed", "add", "FIRST", "https://b/")
    assert duplicate.exit_code == 2 and "name:" in duplicate.stderr
    assert cli("feed", "rm", "nope").exit_code != 0


def test_check_names_the_feed_and_bans_list_shows_its_entries(
    cli: Cli, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PBXFW_STATE_DIR", str(state_dir))
    assert cli("init").exit_code == 0
    assert cli("settings", "set", "firewall_enabled=true").exit_code == 0
    assert cli("network", "add", "Office", "10.20.0.0/16", "--never-block").exit_code == 0
    assert cli("feed", "add", "spamhaus", "https://x/drop.txt", "--scope", "sip").exit_code == 0
    # What the agent keeps after a fetch (the agent refuses never-block
    # entries: written here by hand, check must still let the office pass).
    entries = parse_plain("198.51.100.0/24\n192.0.2.9\n10.20.0.0/16\n")
    write_kept(kept_path(state_dir, "spamhaus"), entries)
    blocked = json.loads(cli("check", "198.51.100.7", "sip", "--json").stdout)
    assert blocked["verdict"] == "block"
    assert blocked["reason"] == "blocked: feed spamhaus (entry 198.51.100.0/24)"
    assert blocked["feed"] == {"name": "spamhaus", "entry": "198.51.100.0/24"}
    assert cli("check", "198.51.100.7", "sip").stdout.startswith("block: blocked: feed spamhaus")
    # Outside the feed's scope, the networks decide.
    other = json.loads(cli("check", "198.51.100.7", "ssh", "--json").stdout)
    assert "feed" not in other
    # Never-block wins over a feed.
    office = json.loads(cli("check", "10.20.1.1", "sip", "--json").stdout)
    assert "feed" not in office
    listed = json.loads(cli("bans", "list", "--origin", "feed:spamhaus", "--json").stdout)
    assert [(e["address"], e["origin"]) for e in listed] == [
        ("10.20.0.0/16", "feed:spamhaus"),
        ("192.0.2.9", "feed:spamhaus"),
        ("198.51.100.0/24", "feed:spamhaus"),
    ]
    assert json.loads(cli("bans", "list", "--origin", "manual", "--json").stdout) == []
