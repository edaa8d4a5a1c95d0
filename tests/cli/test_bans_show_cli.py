"""``pbxfw bans show ADDRESS [--json]`` through the CLI (issue 19): who made an
administrator's ban (the OS user and SUDO_USER), a jail's ban with its lines,
and the refusals: exit 3 naming an address with no ban, exit 2 naming the
field for something that is not an address, nothing stored either way."""

from __future__ import annotations

import ipaddress
import json
import os
import pwd
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pbxfw.domain.bans import Ban
from pbxfw.domain.evidence import BanEvidence, EvidenceLine
from pbxfw.ips.events import BanDecision
from pbxfw.storage.repository import Store
from pbxfw.usecases.bans import BanService
from tests.helpers import Cli, dump_database


def test_an_administrator_ban_says_who_made_it(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("init")
    me = pwd.getpwuid(os.geteuid()).pw_name
    monkeypatch.setenv("SUDO_USER", "alice")
    assert cli("bans", "add", "198.51.100.7", "--reason", "seen scanning").exit_code == 0
    monkeypatch.delenv("SUDO_USER")
    [ban] = json.loads(cli("bans", "show", "198.51.100.7", "--json").stdout)
    assert (ban["origin"], ban["who"], ban["evidence"], ban["active"]) == (
        "manual",
        f"cli:{me} (sudo: alice)",
        None,
        True,
    )
    text = cli("bans", "show", "198.51.100.7").stdout
    assert f"by cli:{me} (sudo: alice)" in text and "reason: seen scanning" in text


def test_a_jail_ban_prints_its_lines_with_file_and_line(cli: Cli, db_url: str) -> None:
    cli("init")
    now = datetime.now(UTC)
    decision = BanDecision(
        ipaddress.ip_address("203.0.113.9"),
        "ssh",
        frozenset({"ssh"}),
        now,
        600,
        2,
        now,
        "2 ssh failures within 600 s (offence 1: 600 s)",
    )
    lines = tuple(
        EvidenceLine(
            "/var/log/auth.log",
            n,
            f"Dec  5 03:00:{n} pbx sshd[7]: Failed password for root from 203.0.113.9 port 4 ssh2",
            now.timestamp(),
            "FailedPassword",
        )
        for n in (17, 19)
    )
    ban = Ban.from_decision(decision, now.timestamp(), evidence=BanEvidence("ssh", 2, 600, lines))
    store = Store.open(db_url)
    try:
        BanService(store).record([ban])
    finally:
        store.close()
    text = cli("bans", "show", "203.0.113.9").stdout
    assert "rule: jail ssh, 2 failures within 600 s" in text
    assert "/var/log/auth.log:17 [FailedPassword] Dec  5 03:00:17 pbx sshd[7]" in text
    assert "/var/log/auth.log:19 " in text


def test_refusals_name_the_address_and_change_nothing(cli: Cli, db_path: Path) -> None:
    cli("init")
    before = dump_database(db_path)
    missing = cli("bans", "show", "198.51.100.99")
    assert missing.exit_code == 3 and "198.51.100.99 has no ban stored" in missing.stderr
    bad = cli("bans", "show", "not-an-address", "--json")
    assert bad.exit_code == 2 and "address" in bad.stderr and bad.stdout == ""
    assert dump_database(db_path) == before
