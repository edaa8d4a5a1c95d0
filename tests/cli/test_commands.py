"""The CLI commands of DESIGN §5 that the foundation owns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import Cli, dump_database

NASTY_NAMES = [
    "Quote \"double\" and 'single'",
    "semi;colon; DROP TABLE networks;--",
    "braces { } [ ] and $dollar",
    "back\\slash \\n not a newline",
    "Филиал Москва",
    "Zürich café ☎",
    "#include /etc/passwd",
]


def test_init_is_idempotent_and_creates_permanent_networks(cli: Cli, db_path: Path) -> None:
    assert cli("init").exit_code == 0
    first = dump_database(db_path)
    assert cli("init").exit_code == 0
    assert dump_database(db_path) == first
    networks = json.loads(cli("network", "list", "--json").stdout)
    assert [(n["name"], n["subnet"], n["permanent"]) for n in networks] == [
        ("Internet", "0.0.0.0/0", True),
        ("Internet IPv6", "::/0", True),
    ]
    for n in networks:
        allowed = sorted(k for k, v in n["services"].items() if v == "allow")
        assert allowed == ["icmp", "sip"]
    settings = json.loads(cli("settings", "show", "--json").stdout)
    assert settings["firewall_enabled"] is False


def test_init_trusts_the_ssh_client(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSH_CLIENT", "2001:db8::42 51000 22")
    result = cli("init")
    assert result.exit_code == 0 and "trusted your address" in result.stdout
    trusted = json.loads(cli("network", "show", "Installer 2001:db8::42", "--json").stdout)
    assert trusted["subnet"] == "2001:db8::42/128"
    assert trusted["services"]["ssh"] == trusted["services"]["web"] == "allow"
    assert trusted["never_block"] is True
    assert cli("init").exit_code == 0  # a second run adds nothing
    assert len(json.loads(cli("network", "list", "--json").stdout)) == 3


@pytest.mark.parametrize("name", NASTY_NAMES)
def test_names_are_kept_exactly(cli: Cli, name: str) -> None:
    cli("init")
    assert cli("network", "add", name, "10.20.0.0/16").exit_code == 0
    shown = json.loads(cli("network", "show", name, "--json").stdout)
    assert shown["name"] == name
    assert name in cli("network", "list").stdout
    exported = json.loads(cli("export").stdout)
    assert exported["networks"][-1]["name"] == name


def test_unnamed_services_keep_their_verdict(cli: Cli) -> None:
    cli("init")
    cli("network", "add", "Office", "10.0.0.0/8", "--allow", "ssh,web", "--block", "sip")
    cli("network", "add", "Lab", "10.1.0.0/16", "--block", "web")
    lab = json.loads(cli("network", "show", "Lab", "--json").stdout)["services"]
    # sip and ssh as the Office had them; web as named; icmp from Office (from Internet)
    assert (lab["sip"], lab["ssh"], lab["web"], lab["icmp"]) == ("block", "allow", "block", "allow")
    cli("settings", "set", "firewall_enabled=true")
    assert json.loads(cli("check", "10.1.0.9", "ssh", "--json").stdout)["verdict"] == "allow"
    check = json.loads(cli("check", "10.1.0.9", "web", "--json").stdout)
    assert check == {
        "address": "10.1.0.9",
        "service": "web",
        "verdict": "block",
        "network": {"id": 4, "name": "Lab", "subnet": "10.1.0.0/16"},
        "reason": 'most specific network "Lab" (10.1.0.0/16) blocks web',
    }


def test_set_changes_only_what_is_named(cli: Cli) -> None:
    cli("init")
    cli("network", "add", "Office", "10.0.0.0/8", "--allow", "ssh", "--local")
    result = cli(
        "network", "set", "Office", "--name", "HQ", "--allow", "ami", "--no-local", "--never-block"
    )
    assert result.exit_code == 0, result.stderr
    hq = json.loads(cli("network", "show", "HQ", "--json").stdout)
    assert hq["services"]["ssh"] == hq["services"]["ami"] == "allow"
    assert (hq["local"], hq["never_block"], hq["subnet"]) == (False, True, "10.0.0.0/8")
    assert cli("network", "rm", "HQ").exit_code == 0
    assert cli("network", "show", "HQ").exit_code == 3


def test_custom_services_behave_like_builtin(cli: Cli) -> None:
    cli("init")
    assert (
        cli(
            "service",
            "add",
            "provisioning",
            "--label",
            "Phone provisioning",
            "--tcp",
            "8080,9000-9010",
        ).exit_code
        == 0
    )
    services = json.loads(cli("service", "list", "--json").stdout)
    prov = services[-1]
    assert prov["key"] == "provisioning" and not prov["builtin"]
    assert prov["ports"] == [
        {"protocol": "tcp", "from": 8080, "to": 8080},
        {"protocol": "tcp", "from": 9000, "to": 9010},
    ]
    assert cli("network", "add", "Phones", "10.3.0.0/16", "--allow", "provisioning").exit_code == 0
    cli("settings", "set", "firewall_enabled=true")
    assert (
        json.loads(cli("check", "10.3.0.1", "provisioning", "--json").stdout)["verdict"] == "allow"
    )
    assert (
        json.loads(cli("check", "10.4.0.1", "provisioning", "--json").stdout)["verdict"] == "block"
    )
    assert cli("service", "rm", "provisioning").exit_code == 0
    assert (
        "provisioning"
        not in json.loads(cli("network", "show", "Phones", "--json").stdout)["services"]
    )


def test_ports_follow_settings(cli: Cli) -> None:
    cli("init")
    cli("settings", "set", "sip_port=5070", "rtp_port_from=12000", "rtp_port_to=12999")
    sip = json.loads(cli("service", "list", "--json").stdout)[0]
    assert {"protocol": "udp", "from": 5070, "to": 5070} in sip["ports"]
    assert {"protocol": "udp", "from": 12000, "to": 12999} in sip["ports"]


def test_export_import_round_trip_is_deterministic(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    cli(
        "network", "add", "Office", "10.0.0.0/8", "--allow", "ssh", "--local", "--description", "HQ"
    )
    cli("network", "add", "Филиал", "2001:db8::/32", "--never-block")
    cli("service", "add", "prov", "--udp", "69")
    cli("settings", "set", "sip_port=5070", "ips_preset=enhanced")
    first = cli("export").stdout
    assert cli("export").stdout == first
    path = tmp_path / "config.json"
    path.write_text(first)
    assert cli("import", str(path)).exit_code == 0
    assert cli("export").stdout == first
    document = json.loads(first)
    assert document["settings"]["ips_maxretry"] == 5
    assert document["services"] == [{"key": "prov", "label": "prov", "tcp": "", "udp": "69"}]


def test_import_replaces_but_keeps_permanent_networks(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    cli("network", "add", "Old", "10.0.0.0/8")
    document = {
        "networks": [
            {"name": "World", "subnet": "0.0.0.0/0", "services": {"sip": "block"}},
            {"name": "Branch", "subnet": "172.16.0.0/12", "services": {"sip": "allow"}},
            {"name": "Branch lab", "subnet": "172.16.5.0/24"},
        ]
    }
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    assert cli("import", str(path)).exit_code == 0
    networks = {n["name"]: n for n in json.loads(cli("network", "list", "--json").stdout)}
    assert set(networks) == {"World", "Internet IPv6", "Branch", "Branch lab"}
    assert networks["World"]["permanent"] and networks["World"]["services"]["sip"] == "block"
    assert networks["World"]["services"]["icmp"] == "allow"  # not named: unchanged default
    assert networks["Branch lab"]["services"]["sip"] == "allow"  # inherited from Branch
