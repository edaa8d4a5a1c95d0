"""``pbxfw asterisk discover|pjsip`` through the CLI: the settings and the rules follow."""

from __future__ import annotations

import json
from pathlib import Path

from tests.helpers import Cli, dump_database

FIXTURES = Path(__file__).parent.parent / "asterisk" / "fixtures"


def test_discover_sets_the_ports_and_they_reach_the_catalogue(cli: Cli) -> None:
    cli("init")
    result = cli(
        "asterisk", "discover", "--config-dir", str(FIXTURES / "acceptance"), "--sshd-config", ""
    )
    assert result.exit_code == 0, result.stderr
    assert "sip_port: 5060 -> 5070" in result.stdout
    settings = json.loads(cli("settings", "show", "--json").stdout)
    assert {
        k: settings[k]
        for k in (
            "sip_port",
            "tls_port",
            "rtp_port_from",
            "rtp_port_to",
            "ajam_port",
            "ajam_tls_port",
            "ami_port",
            "iax_port",
        )
    } == {
        "sip_port": 5070,
        "tls_port": 5071,
        "rtp_port_from": 12000,
        "rtp_port_to": 12999,
        "ajam_port": 8090,
        "ajam_tls_port": 8091,
        "ami_port": 5039,
        "iax_port": 4570,
    }
    sip = json.loads(cli("service", "list", "--json").stdout)[0]
    assert {"protocol": "udp", "from": 5070, "to": 5070} in sip["ports"]
    again = cli(
        "asterisk", "discover", "--config-dir", str(FIXTURES / "acceptance"), "--sshd-config", ""
    )
    assert "no change" in again.stdout


def test_discover_of_a_missing_folder_changes_nothing(
    cli: Cli, db_path: Path, tmp_path: Path
) -> None:
    cli("init")
    before = dump_database(db_path)
    result = cli("asterisk", "discover", "--config-dir", str(tmp_path / "nowhere"))
    assert result.exit_code == 2
    assert "no such folder" in result.stderr
    assert dump_database(db_path) == before


def test_pjsip_lists_loopback_and_local_networks_only(cli: Cli, tmp_path: Path) -> None:
    cli("init")
    cli("network", "add", "Office", "192.168.10.0/24", "--local")
    cli("network", "add", "VPN v6", "fd00:1::/64", "--local")
    cli("network", "add", "Partner", "198.51.100.0/24")
    text = cli("asterisk", "pjsip").stdout
    nets = [line.split("=", 1)[1] for line in text.splitlines() if line.startswith("local_net=")]
    assert nets == ["127.0.0.1/32", "::1/128", "192.168.10.0/24", "fd00:1::/64"]
    target = tmp_path / "pbxfw_pjsip_nat.conf"
    assert "wrote" in cli("asterisk", "pjsip", "--write", str(target)).stdout
    assert target.read_text() == text
    assert "unchanged" in cli("asterisk", "pjsip", "--write", str(target)).stdout
