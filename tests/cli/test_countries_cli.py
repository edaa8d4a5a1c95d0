"""``pbxfw country …`` and ``pbxfw geo …`` through the real CLI (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import Cli, dump_database


def setup(cli: Cli, tmp_path: Path) -> None:
    assert cli("init").exit_code == 0
    data = tmp_path / "countries.csv"
    data.write_text("198.51.100.0/24,DE\n203.0.113.0/24,CN\n2001:db8:2::/48,CN\n")
    result = cli("geo", "import", str(data), "--date", "2026-11-30")
    assert result.exit_code == 0, result.stderr
    assert "1 IPv6 ranges" in result.stdout


def test_the_readme_example_sip_only_from_dach(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    assert cli("country", "add", "DACH", "DE,AT,CH", "--allow", "sip").exit_code == 0
    assert cli("country", "add", "Elsewhere", "*", "--block", "sip").exit_code == 0
    assert cli("settings", "set", "firewall_enabled=true").exit_code == 0
    listed = json.loads(cli("country", "list", "--json").stdout)
    assert [(r["name"], r["codes"], r["services"]) for r in listed] == [
        ("DACH", ["AT", "CH", "DE"], {"sip": "allow"}),
        ("Elsewhere", ["*"], {"sip": "block"}),
    ]
    blocked = json.loads(cli("check", "203.0.113.9", "sip", "--json").stdout)
    assert blocked["verdict"] == "block"
    assert blocked["reason"].startswith("blocked: country CN, rule 'Elsewhere'")
    assert blocked["country"] == {"code": "CN", "rule": "Elsewhere"}
    assert json.loads(cli("check", "198.51.100.7", "sip", "--json").stdout)["verdict"] == "allow"
    found = json.loads(cli("country", "lookup", "2001:db8:2::1", "--json").stdout)
    assert found == {
        "address": "2001:db8:2::1",
        "country": "CN",
        "range": "2001:db8:2::-2001:db8:2:ffff:ffff:ffff:ffff:ffff",
        "rule": "Elsewhere",
    }
    text = cli("country", "lookup", "192.0.2.1").stdout
    assert "unknown" in text and "no country rule" in text
    assert "allow_sip_v4" in cli("compile").stdout


def test_bad_input_exits_2_names_the_field_and_changes_nothing(
    cli: Cli, tmp_path: Path, db_path: Path
) -> None:
    setup(cli, tmp_path)
    assert cli("country", "add", "DACH", "DE,AT", "--allow", "sip").exit_code == 0
    before = dump_database(db_path)
    for args, words in (
        (("country", "add", "X", "DE,XX"), "codes: 'XX' is not an ISO 3166-1 alpha-2"),
        (("country", "add", "Y", "FR,AT"), "codes: AT already in country rule 'DACH'"),
        (("country", "add", "Z", "FR", "--allow", "nope"), "allow: unknown service 'nope'"),
        (("country", "set", "DACH", "--codes", "QQ"), "codes: 'QQ'"),
        (("country", "lookup", "not-an-ip"), "address"),
    ):
        result = cli(*args)
        assert result.exit_code == 2, (args, result.stdout, result.stderr)
        assert words in result.stderr, (args, result.stderr)
    assert cli("country", "rm", "nothing").exit_code == 3
    bad = tmp_path / "bad.csv"
    bad.write_text("198.51.100.0/24,DE\n10.0.0.0/8\n")
    result = cli("geo", "import", str(bad))
    assert result.exit_code == 2
    assert "file: line 2" in result.stderr
    assert dump_database(db_path) == before


def test_set_rm_and_status(cli: Cli, tmp_path: Path) -> None:
    setup(cli, tmp_path)
    assert cli("country", "add", "Asia", "CN", "--block", "sip,ssh").exit_code == 0
    result = cli("country", "set", "Asia", "--inherit", "ssh", "--json")
    assert json.loads(result.stdout)["services"] == {"sip": "block"}
    assert "removed country rule 1: Asia" in cli("country", "rm", "Asia").stdout
    assert json.loads(cli("country", "list", "--json").stdout) == []
    status = json.loads(cli("geo", "status", "--json").stdout)
    assert (status["ipv4_ranges"], status["ipv6_ranges"], status["date"]) == (2, 1, "2026-11-30")
