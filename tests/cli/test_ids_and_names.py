"""Ids out of range and names in another spelling, through the real CLI (issue 13, point 11).

A reference that cannot be an id is looked up as a name and not found (exit
3, "no network ..."), never a traceback; a name that differs from a taken one
only by case or surrounding space is refused (exit 2) by every entry point
that adds or renames networks, import included. Storage is unchanged after
each refusal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pbxfw.domain.addresses import parse_subnet
from pbxfw.domain.networks import Network
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from tests.helpers import Cli, CliResult, dump_database


@pytest.fixture
def populated(cli: Cli, db_path: Path) -> Cli:
    assert cli("init").exit_code == 0
    assert cli("network", "add", "Office", "192.168.1.0/24", "--allow", "ssh").exit_code == 0
    return cli


NOT_IDS = ["99999999999999999999", "9223372036854775808", "0", "-1", "²"]
COMMANDS = [
    ["network", "show"],
    ["network", "show", "--json"],
    ["network", "set", "--local"],
    ["network", "set", "--name", "Moved"],
    ["network", "rm"],
]


@pytest.mark.parametrize("ref", NOT_IDS)
@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_a_reference_that_cannot_be_an_id_is_not_found(
    populated: Cli, db_path: Path, command: list[str], ref: str
) -> None:
    before = dump_database(db_path)
    # `--` so that "-1" is the reference, not an option.
    result = populated(*command[:2], *command[2:], "--", ref)
    assert result.exit_code == 3, result.stderr
    assert result.stderr.strip() == f"error: no network {ref!r}; see `pbxfw network list`"
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert dump_database(db_path) == before


def test_an_all_digit_name_beyond_the_ids_is_found_by_name(populated: Cli) -> None:
    assert populated("network", "add", NOT_IDS[0], "10.9.0.0/16").exit_code == 0
    shown = populated("network", "show", "--json", NOT_IDS[0])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["name"] == NOT_IDS[0]


# -- names ----------------------------------------------------------------------------

CLASHES = [
    (["network", "add", "internet", "10.1.0.0/16"], "a network named 'Internet' exists already"),
    (["network", "add", "Office ", "10.1.0.0/16"], "a network named 'Office' exists already"),
    (["network", "add", " OFFICE", "10.1.0.0/16"], "a network named 'Office' exists already"),
    (["network", "set", "Office", "--name", "internet ipv6"], "named 'Internet IPv6' exists"),
    (["network", "set", "Internet", "--name", "office"], "a network named 'Office' exists"),
    (["network", "add", "\tOffice", "10.1.0.0/16"], "name: contains control characters"),
    (["network", "add", "Office\n", "10.1.0.0/16"], "name: contains control characters"),
    (["network", "add", "   ", "10.1.0.0/16"], "name: is empty"),
    (["service", "add", "prov", "--label", "ssh", "--tcp", "1"], "label: 'ssh' is already"),
    (["service", "add", "iax2", "--udp", "4570"], "label: 'iax2' is already the label of"),
]


@pytest.mark.parametrize(("args", "message"), CLASHES, ids=[" ".join(a) for a, _ in CLASHES])
def test_a_name_in_another_spelling_is_refused(
    populated: Cli, db_path: Path, args: list[str], message: str
) -> None:
    before = dump_database(db_path)
    result = populated(*args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert dump_database(db_path) == before


def test_the_clash_message_says_names_are_compared_without_case(populated: Cli) -> None:
    result = populated("network", "add", "office", "10.1.0.0/16")
    assert result.stderr.strip() == (
        "error: name: a network named 'Office' exists already "
        "(names are compared without regard to case and surrounding space)"
    )


def test_surrounding_space_is_dropped_and_case_of_its_own_name_may_change(populated: Cli) -> None:
    assert populated("network", "add", "  Branch  ", "10.2.0.0/16").exit_code == 0
    assert json.loads(populated("network", "show", "--json", "Branch").stdout)["name"] == "Branch"
    assert populated("network", "set", "Office", "--name", "OFFICE").exit_code == 0
    assert populated("network", "show", "OFFICE").exit_code == 0


def test_names_stored_before_the_rule_stay_editable(populated: Cli, db_path: Path) -> None:
    # A database from an earlier version may hold two spellings of one name.
    store = Store.open(database_url(str(db_path)))
    with store.write() as repo:
        repo.add_network(Network("office", parse_subnet("10.3.0.0/16")))
    store.close()
    assert populated("network", "set", "office", "--allow", "web").exit_code == 0
    assert populated("network", "set", "Office", "--description", "HQ").exit_code == 0
    result = populated("network", "set", "office", "--name", "OFFICE")
    assert result.exit_code == 2 and "a network named 'Office' exists" in result.stderr


def _import(cli: Cli, tmp_path: Path, document: object) -> CliResult:
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document))
    return cli("import", str(path))


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        (
            [{"name": "a", "subnet": "10.0.0.0/8"}, {"name": "A ", "subnet": "10.1.0.0/16"}],
            "networks[1].name: a network named 'a' exists already (names are compared",
        ),
        (
            # The permanent networks are not in the document, so they stay with their names.
            [{"name": "INTERNET", "subnet": "10.0.0.0/8"}],
            "networks[0].name: a network named 'Internet' exists already",
        ),
        (
            [{"name": "x", "subnet": "10.0.0.0/8", "local": "yes"}],
            "networks[0].local: must be true or false",
        ),
        ([{"name": "x", "subnet": "10.0.0.0/8", "id": True}], "networks[0].id: must be a positive"),
        ([{"name": 5, "subnet": "10.0.0.0/8"}], "networks[0].name: must be text"),
    ],
)
def test_import_refuses_names_in_another_spelling(
    populated: Cli, db_path: Path, tmp_path: Path, networks: list[dict[str, object]], message: str
) -> None:
    before = dump_database(db_path)
    result = _import(populated, tmp_path, {"networks": networks})
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert dump_database(db_path) == before


def test_import_refuses_custom_service_labels_in_another_spelling(
    populated: Cli, db_path: Path, tmp_path: Path
) -> None:
    before = dump_database(db_path)
    services = [
        {"key": "prov", "label": "Provisioning", "tcp": "1"},
        {"key": "prov2", "label": "provisioning ", "tcp": "2"},
        {"key": "web2", "label": "web", "tcp": "3"},
    ]
    result = _import(populated, tmp_path, {"services": services})
    assert result.exit_code == 2
    assert "services[1].label: 'provisioning' is already the label of service 'prov'" in (
        result.stderr
    )
    assert "services[2].label: 'web' is already the label of service 'web'" in result.stderr
    assert dump_database(db_path) == before


def test_an_export_imports_again_unchanged(populated: Cli, db_path: Path, tmp_path: Path) -> None:
    document = json.loads(populated("export").stdout)
    assert _import(populated, tmp_path, document).exit_code == 0
    assert json.loads(populated("export").stdout) == document


def test_a_stripped_name_is_what_import_stores(
    populated: Cli, tmp_path: Path, db_path: Path
) -> None:
    result = _import(populated, tmp_path, {"networks": [{"name": " Lab ", "subnet": "10.0.0.0/8"}]})
    assert result.exit_code == 0, result.stderr
    svc = ConfigService(Store.open(database_url(str(db_path))))
    assert svc.network("Lab").name == "Lab"
    svc.store.close()


# -- numbers inside text --------------------------------------------------------------

NUMBERS = [
    (["network", "add", "X", "10.0.0.0/²"], "subnet: '10.0.0.0/²': the prefix length must be"),
    (["network", "add", "X", "10.0.0.0/١"], "subnet: '10.0.0.0/١': the prefix length must be"),
    (["network", "add", "X", "10.0.0.0/" + "9" * 5000], "the prefix length must be a number"),
    (["network", "add", "X", "10.0.0." + "9" * 5000 + "/32"], "is not an IPv4 address: octet"),
    (["network", "set", "Office", "--subnet", "fd00::/²"], "the prefix length must be a number"),
    (["service", "add", "prov", "--tcp", "9" * 5000], "tcp: '999"),
    (["service", "add", "prov", "--udp", "٥٠٠٠"], "udp: '٥٠٠٠' is not a port or range"),
]


@pytest.mark.parametrize(("args", "message"), NUMBERS, ids=[a[-1][:20] for a, _ in NUMBERS])
def test_digits_that_are_not_ascii_or_too_many_are_refused(
    populated: Cli, db_path: Path, args: list[str], message: str
) -> None:
    before = dump_database(db_path)
    result = populated(*args)
    assert result.exit_code == 2, result.stderr
    assert message in result.stderr
    assert dump_database(db_path) == before
