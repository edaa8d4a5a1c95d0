"""Every refusal: non-zero exit, a message naming the field, storage unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import Cli, dump_database


@pytest.fixture
def populated(cli: Cli, db_path: Path) -> Cli:
    assert cli("init").exit_code == 0
    assert cli("network", "add", "Office", "192.168.1.0/24", "--allow", "ssh").exit_code == 0
    assert cli("network", "add", "VPN", "2001:db8::/32", "--local").exit_code == 0
    return cli


REFUSALS = [
    # (arguments, field named in the message)
    (
        ["network", "add", "Bad", "192.168.1.256/32"],
        "subnet: '192.168.1.256' is not an IPv4 address",
    ),
    (["network", "add", "Wide", "10.0.0.0/33"], "subnet: '10.0.0.0/33': the prefix length"),
    (["network", "add", "Wide6", "2001:db9::/129"], "the prefix length of an IPv6 subnet is 0–128"),
    (["network", "add", "Zone", "fe80::1%eth0/64"], "subnet: 'fe80::1%eth0' has a zone index"),
    (["network", "add", "Again", "192.168.1.0/24"], "subnet: 192.168.1.0/24 is already the subnet"),
    (["network", "add", "Again", "192.168.1.5/24"], "subnet: 192.168.1.0/24 is already the subnet"),
    (["network", "add", "Office", "10.1.0.0/16"], "name: a network named 'Office' exists"),
    (["network", "add", "", "10.1.0.0/16"], "name: is empty"),
    (["network", "add", "x" * 65, "10.1.0.0/16"], "name: is 65 characters long; the limit is 64"),
    (["network", "add", "tab\there", "10.1.0.0/16"], "name: contains control characters"),
    (["network", "add", "bell\x07", "10.1.0.0/16"], "name: contains control characters"),
    (
        ["network", "add", "Svc", "10.1.0.0/16", "--allow", "telnet"],
        "allow: unknown service 'telnet'",
    ),
    (
        ["network", "add", "Svc", "10.1.0.0/16", "--block", "sip,xyz"],
        "block: unknown service 'xyz'",
    ),
    (["network", "set", "Office", "--allow", "nope"], "allow: unknown service 'nope'"),
    (["network", "set", "Office", "--subnet", "2001:db8::/32"], "subnet: 2001:db8::/32 is already"),
    (["network", "set", "Internet", "--subnet", "10.0.0.0/8"], "subnet: 'Internet' is permanent"),
    (["settings", "set", "sip_port=0"], "sip_port: '0': a port is a number from 1 to 65535"),
    (
        ["settings", "set", "ssh_port=65536"],
        "ssh_port: '65536': a port is a number from 1 to 65535",
    ),
    (["settings", "set", "rtp_port_from=20000"], "rtp_port_from: rtp_port_from (20000) is above"),
    (["settings", "set", "rtp_port_from=12000", "rtp_port_to=11000"], "rtp_port_from"),
    (["settings", "set", "firewall_enabled=perhaps"], "firewall_enabled:"),
    (["settings", "set", "nonsense=1"], "nonsense: unknown setting"),
    (["settings", "set", "sip_port"], "sip_port: write KEY=VALUE"),
    (
        ["settings", "set", "log_ssh", "journal:ssh.service"],
        "log_ssh: write KEY=VALUE as one word: log_ssh=journal:ssh.service",
    ),
    (["network", "rm", "Internet"], "'Internet' (0.0.0.0/0) is permanent and cannot be removed"),
    (["network", "rm", "Internet IPv6"], "is permanent and cannot be removed"),
    (["network", "rm", "Nowhere"], "no network 'Nowhere'"),
    (["service", "add", "sip", "--tcp", "1"], "key: 'sip' is a built-in service"),
    (["service", "add", "prov", "--tcp", "0"], "tcp: port 0 is outside 1–65535"),
    (["service", "add", "prov", "--udp", "70000"], "udp: port 70000 is outside 1–65535"),
    (["service", "rm", "sip"], "key: 'sip' is built-in"),
    (["check", "10.0.0.300", "sip"], "address: '10.0.0.300' is not an IPv4 address"),
    (["check", "10.0.0.3", "telnet"], "service: unknown service 'telnet'"),
]


@pytest.mark.parametrize(("args", "message"), REFUSALS, ids=[" ".join(a)[:60] for a, _ in REFUSALS])
def test_refused_and_nothing_stored(
    populated: Cli, db_path: Path, args: list[str], message: str
) -> None:
    before = dump_database(db_path)
    result = populated(*args)
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stdout == ""
    assert dump_database(db_path) == before


def _document(cli: Cli) -> dict[str, Any]:
    result = cli("export", "--json")
    assert result.exit_code == 0
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def test_import_with_one_bad_network_changes_nothing(
    populated: Cli, db_path: Path, tmp_path: Path
) -> None:
    document = _document(populated)
    document["networks"] += [
        {"name": "good one", "subnet": "172.16.0.0/12", "services": {"sip": "allow"}},
        {"name": "bad one", "subnet": "172.16.300.0/24"},
        {"name": "good two", "subnet": "198.51.100.0/24"},
    ]
    bad = len(document["networks"]) - 2
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    before = dump_database(db_path)
    result = populated("import", str(path))
    assert result.exit_code != 0
    assert f"networks[{bad}].subnet: '172.16.300.0' is not an IPv4 address" in result.stderr
    assert dump_database(db_path) == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "file:"),
        ("", "is not JSON"),
        ("[1, 2]", "document: must be a JSON object"),
        (
            '{"networks": [{"name": "a", "subnet": "10.0.0.0/8", "services": {"sip": "maybe"}}]}',
            "networks[0].services.sip: 'maybe' must be allow or block",
        ),
        (
            '{"networks": [{"name": "a", "subnet": "10.0.0.0/8"}, {"name": "a", "subnet": "10.1.0.0/16"}]}',
            "networks[1].name: a network named 'a' exists already",
        ),
        ('{"settings": {"sip_port": 0}}', "settings.sip_port"),
    ],
)
def test_import_refusals(
    populated: Cli, db_path: Path, tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "doc.json"
    path.write_text(text)
    before = dump_database(db_path)
    result = populated("import", str(path))
    assert result.exit_code != 0
    assert message in result.stderr
    assert dump_database(db_path) == before


def test_missing_database_is_a_clear_error(cli: Cli, db_path: Path) -> None:
    result = cli("network", "list")
    assert result.exit_code == 4
    assert "run `pbxfw init` first" in result.stderr
    assert not db_path.exists()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("nope://", "--db: cannot use 'nope://'"),
        ("mysql://admin:s3cret@db/pbx", "--db: cannot use 'mysql://admin:***@db/pbx'"),
        ("postgresql://admin:s3cret@db:port/pbx", "--db: 'postgresql://admin:***@db:port/pbx'"),
    ],
)
def test_a_database_url_pbxfw_cannot_use_is_a_clear_error(cli: Cli, url: str, message: str) -> None:
    # An unknown dialect, a driver that is not installed, a port that is not
    # a number: exit 4 with the URL (password hidden), never a traceback.
    result = cli("network", "list", "--db", url)
    assert result.exit_code == 4
    assert message in result.stderr
    assert "s3cret" not in result.stderr + result.stdout
