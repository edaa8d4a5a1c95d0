"""``pbxfw fingerprint list|add|rm`` through the real CLI (issue 18), per site."""

from __future__ import annotations

import json

from tests.helpers import Cli


def listed(cli: Cli, *site: str) -> list[tuple[str, str, bool]]:
    result = cli(*site, "fingerprint", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return [(f["header"], f["pattern"], f["builtin"]) for f in json.loads(result.stdout)]


def test_list_add_rm_and_bad_input_changes_nothing(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    shipped = listed(cli)
    assert ("User-Agent", "friendly-scanner", True) in shipped

    assert cli("fingerprint", "add", "EvilDialer").exit_code == 0
    assert cli("fingerprint", "add", "sipvicious", "--header", "from").exit_code == 0
    assert cli("fingerprint", "rm", "Friendly-Scanner").exit_code == 0
    now = listed(cli)
    assert ("User-Agent", "friendly-scanner", True) not in now
    assert now[-2:] == [("User-Agent", "EvilDialer", False), ("From", "sipvicious", False)]

    before = listed(cli)
    for args, field in (
        (("fingerprint", "add", "evildialer"), "pattern"),  # listed already
        (("fingerprint", "add", "x", "--header", "User Agent"), "header"),
        (("fingerprint", "add", "   "), "pattern"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stdout)
        assert field in result.stderr
    missing = cli("fingerprint", "rm", "nothing-like-this")
    assert missing.exit_code != 0 and "fingerprint list" in missing.stderr
    assert listed(cli) == before

    assert cli("fingerprint", "add", "friendly-scanner").exit_code == 0  # back on
    assert cli("fingerprint", "rm", "EvilDialer").exit_code == 0
    assert sorted(listed(cli)) == sorted([*shipped, ("From", "sipvicious", False)])


def test_each_site_has_its_own_list(cli: Cli) -> None:
    assert cli("init").exit_code == 0
    assert cli("site", "add", "branch").exit_code == 0
    assert cli("--site", "branch", "fingerprint", "rm", "sipcli").exit_code == 0
    assert ("User-Agent", "sipcli", True) in listed(cli)
    assert ("User-Agent", "sipcli", True) not in listed(cli, "--site", "branch")
    assert cli("site", "rm", "branch").exit_code == 0
