"""``pbxfw history [--json] [--limit N]``, ``history show REV``, ``history restore REV``.

Through the in-process CLI: who is the OS user and ``SUDO_USER``, from
``local``, via ``cli`` (``import`` for ``pbxfw import``); a readable diff; a
restore that stages the revision (``apply`` then applies it); bad input is
refused naming the field, with exit 2, and changes nothing.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import pytest

from tests.helpers import Cli

USER = pwd.getpwuid(os.geteuid()).pw_name


def history(cli: Cli, *args: str) -> list[dict[str, object]]:
    result = cli("history", "--json", *args)
    assert result.exit_code == 0, result.stderr
    entries: list[dict[str, object]] = json.loads(result.stdout)
    return entries


@pytest.fixture
def initialised(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert cli("init").exit_code == 0
    return cli


def test_changes_are_listed_with_who_where_and_through_what(
    initialised: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = initialised
    assert cli("network", "add", "Office", "10.1.0.0/16", "--allow", "ssh").exit_code == 0
    monkeypatch.setenv("SUDO_USER", "bob")
    assert cli("network", "set", "Office", "--block", "ssh").exit_code == 0
    assert cli("settings", "set", "ips_maxretry=3").exit_code == 0
    entries = history(cli)
    assert [(e["actor"], e["via"], e["client"], e["summary"]) for e in entries[:3]] == [
        (f"{USER} (sudo: bob)", "cli", "local", "setting ips_maxretry: 10 → 3"),
        (f"{USER} (sudo: bob)", "cli", "local", "network Office: ssh allow → block"),
        (USER, "cli", "local", "network Office added (10.1.0.0/16)"),
    ]
    assert str(entries[-1]["summary"]).startswith("first recorded configuration")
    assert len(history(cli, "--limit", "2")) == 2
    text = cli("history").stdout
    assert f"{USER} (sudo: bob) via cli: setting ips_maxretry: 10 → 3" in text

    shown = cli("history", "show", str(entries[1]["rev"]))
    assert shown.exit_code == 0, shown.stderr
    assert f"changes since revision {entries[2]['rev']}:" in shown.stdout
    assert "  network Office: ssh allow → block" in shown.stdout
    as_json = json.loads(cli("history", "show", str(entries[1]["rev"]), "--json").stdout)
    assert as_json["changes"] == ["network Office: ssh allow → block"]
    assert as_json["document"]["settings"]["ips_maxretry"] == 10


def test_an_import_is_recorded_through_import(initialised: Cli, tmp_path: Path) -> None:
    cli = initialised
    document = json.loads(cli("export").stdout)
    document["settings"]["ips_bantime"] = 7200
    path = tmp_path / "config.json"
    path.write_text(json.dumps(document))
    assert cli("import", str(path)).exit_code == 0
    newest = history(cli, "--limit", "1")[0]
    assert (newest["via"], newest["client"]) == ("import", "local")


def test_restore_stages_the_revision_for_apply(initialised: Cli) -> None:
    cli = initialised
    start = history(cli)[0]
    original = cli("export").stdout
    cli("network", "add", "Lab", "10.9.0.0/16")
    cli("settings", "set", "firewall_enabled=true")
    result = cli("history", "restore", str(start["rev"]))
    assert result.exit_code == 0, result.stderr
    assert "`pbxfw apply` applies it" in result.stdout
    assert cli("export").stdout == original
    assert history(cli, "--limit", "1")[0]["summary"] == (
        f"restore of revision {start['rev']}: network Lab removed (and 1 more)"
    )
    again = cli("history", "restore", str(start["rev"]))
    assert "nothing changed" in again.stdout


def test_bad_input_is_refused_and_changes_nothing(initialised: Cli) -> None:
    cli = initialised
    before = history(cli)
    cases = [
        (("history", "--limit", "0"), "limit"),
        (("history", "--limit", "5000"), "limit"),
        (("history", "show", "999999"), "no history entry 999999"),
        (("history", "restore", "999999"), "no history entry 999999"),
        (("history", "show", "abc"), "Invalid value for 'REV'"),
    ]
    for args, words in cases:
        result = cli(*args)
        assert result.exit_code in (2, 3), (args, result.exit_code)
        assert words in result.stderr, (args, result.stderr)
    cli("bans", "add", "203.0.113.5")
    ban = history(cli, "--limit", "1")[0]
    assert ban["kind"] == "ban" and ban["summary"] == "ban 203.0.113.5 (manual, 1d)"
    refused = cli("history", "restore", str(ban["rev"]))
    assert refused.exit_code == 2
    assert "only a configuration revision can be restored" in refused.stderr
    assert history(cli)[1:] == before
