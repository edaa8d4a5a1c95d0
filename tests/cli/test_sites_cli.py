"""``pbxfw site list|add|rm`` and ``--site`` on the configuration commands (issue 16).

The site a command uses is, first to last: its own ``--site``, the global
``pbxfw --site NAME`` before the command, ``PBXFW_SITE``, ``default``. Through
the in-process CLI, and once as a real process; without any of them every
command behaves as before sites (the rest of the suite).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import Cli

PBXFW = str(Path(sys.executable).with_name("pbxfw"))


def names(cli: Cli, *options: str) -> list[str]:
    result = cli(*options, "network", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return [n["name"] for n in json.loads(result.stdout)]


@pytest.fixture
def two_sites(cli: Cli) -> Cli:
    assert cli("init").exit_code == 0
    added = cli("site", "add", "branch")
    assert added.exit_code == 0, added.stderr
    assert "added site branch" in added.stdout
    return cli


def test_site_list_add_rm(two_sites: Cli) -> None:
    cli = two_sites
    listed = json.loads(cli("site", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["branch", "default"]
    assert all(isinstance(s["created_at"], float) for s in listed)
    assert "branch" in cli("site", "list").stdout

    again = cli("site", "add", "branch")
    assert again.exit_code == 2 and "exists already" in again.stderr
    bad = cli("site", "add", "-x")
    assert bad.exit_code != 0
    bad = cli("site", "add", "a/b")
    assert bad.exit_code == 2 and "name:" in bad.stderr and "site name" in bad.stderr

    refused = cli("site", "rm", "default")
    assert refused.exit_code == 2 and "cannot be removed" in refused.stderr
    missing = cli("site", "rm", "ghost")
    assert missing.exit_code == 3 and "no site 'ghost'" in missing.stderr
    removed = cli("site", "rm", "branch")
    assert removed.exit_code == 0 and "removed site branch" in removed.stdout
    assert [s["name"] for s in json.loads(cli("site", "list", "--json").stdout)] == ["default"]


def test_every_way_to_name_the_site(
    two_sites: Cli, monkeypatch: pytest.MonkeyPatch, db_path: Path
) -> None:
    cli = two_sites
    assert cli("--site", "branch", "network", "add", "Office", "10.1.0.0/16").exit_code == 0
    assert cli("network", "add", "Shop", "10.2.0.0/16", "--site", "branch").exit_code == 0
    # The same name and subnet in default.
    assert cli("network", "add", "Office", "10.1.0.0/16").exit_code == 0
    assert names(cli) == ["Internet", "Internet IPv6", "Office"]
    assert names(cli, "--site", "branch") == ["Internet", "Internet IPv6", "Office", "Shop"]
    monkeypatch.setenv("PBXFW_SITE", "branch")
    assert names(cli) == ["Internet", "Internet IPv6", "Office", "Shop"]
    # The global --site wins over PBXFW_SITE; the command's own over both.
    assert names(cli, "--site", "default") == ["Internet", "Internet IPv6", "Office"]
    listed = cli("--site", "branch", "network", "list", "--json", "--site", "default")
    assert [n["name"] for n in json.loads(listed.stdout)] == ["Internet", "Internet IPv6", "Office"]
    monkeypatch.delenv("PBXFW_SITE")

    # A real process, the environment naming the site.
    env = {**os.environ, "PBXFW_DB": str(db_path), "PBXFW_SITE": "branch"}
    out = subprocess.run(
        [PBXFW, "network", "list", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert [n["name"] for n in json.loads(out.stdout)] == [
        "Internet",
        "Internet IPv6",
        "Office",
        "Shop",
    ]


def test_each_configuration_command_follows_the_site(two_sites: Cli, tmp_path: Path) -> None:
    cli = two_sites
    b = ("--site", "branch")
    assert (
        cli(*b, "service", "add", "prov", "--label", "Provisioning", "--tcp", "8443").exit_code == 0
    )
    assert "prov" not in cli("service", "list", "--json").stdout
    assert "prov" in cli(*b, "service", "list", "--json").stdout

    assert cli(*b, "settings", "set", "sip_port=5070", "firewall_enabled=true").exit_code == 0
    assert json.loads(cli("settings", "show", "--json").stdout)["sip_port"] == 5060
    assert json.loads(cli(*b, "settings", "show", "--json").stdout)["sip_port"] == 5070

    assert cli(*b, "network", "add", "Office", "10.1.0.0/16", "--allow", "ssh").exit_code == 0
    checked = json.loads(cli(*b, "check", "10.1.2.3", "ssh", "--json").stdout)
    assert checked["verdict"] == "allow" and checked["network"]["name"] == "Office"
    # default has no such network (and its firewall is off).
    default_check = json.loads(cli("check", "10.1.2.3", "ssh", "--json").stdout)
    assert (default_check["network"] or {}).get("name") != "Office"
    assert "5070" in cli(*b, "compile").stdout
    assert "5070" not in cli("compile").stdout

    assert cli(*b, "network", "set", "Office", "--description", "HQ").exit_code == 0
    assert json.loads(cli(*b, "network", "show", "Office", "--json").stdout)["description"] == "HQ"
    assert cli("network", "show", "Office").exit_code == 3
    assert cli(*b, "bans", "trust", "10.9.9.9").exit_code == 0
    assert "10.9.9.9/32" in cli(*b, "export").stdout
    assert "10.9.9.9/32" not in cli("export").stdout
    assert cli(*b, "network", "rm", "Office").exit_code == 0


def test_export_import_per_site(two_sites: Cli, tmp_path: Path) -> None:
    cli = two_sites
    assert cli("network", "add", "HQ", "192.0.2.0/24", "--allow", "web").exit_code == 0
    exported = cli("export")
    document = tmp_path / "default.json"
    document.write_text(exported.stdout)
    imported = cli("--site", "branch", "import", str(document))
    assert imported.exit_code == 0, imported.stderr
    assert names(cli, "--site", "branch") == ["Internet", "Internet IPv6", "HQ"]
    assert cli("export").stdout == exported.stdout  # default unchanged, byte for byte
    again = cli("--site", "branch", "export").stdout
    (tmp_path / "branch.json").write_text(again)
    assert cli("--site", "branch", "import", str(tmp_path / "branch.json")).exit_code == 0
    assert cli("--site", "branch", "export").stdout == again


def test_an_unknown_site_exits_2_naming_site(
    two_sites: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    cli = two_sites
    before = cli("export").stdout
    for args in (
        ("--site", "ghost", "network", "list"),
        ("network", "add", "X", "10.0.0.0/8", "--site", "ghost"),
        ("--site", "ghost", "settings", "set", "sip_port=5070"),
        ("--site", "ghost", "compile"),
        ("--site", "ghost", "export"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, args
        assert "--site: there is no site 'ghost'" in result.stderr
        assert "pbxfw site add ghost" in result.stderr
    # The agent stops before it starts (nothing touches a kernel).
    result = cli("agent", "--site", "ghost", "--netns", "pbxfw-never-made")
    assert result.exit_code == 2 and "--site: there is no site 'ghost'" in result.stderr
    monkeypatch.setenv("PBXFW_SITE", "ghost")
    result = cli("network", "list")
    assert result.exit_code == 2 and "--site: there is no site 'ghost'" in result.stderr
    bad = cli("--site", "no/such", "network", "list")
    assert bad.exit_code == 2 and "--site:" in bad.stderr
    monkeypatch.delenv("PBXFW_SITE")
    assert cli("export").stdout == before
