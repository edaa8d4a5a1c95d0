"""One network validator: the same bad input reads the same through CLI, REST and import.

``validate_network`` (pbxfw.domain.networks) is called by ``network add``,
``POST /api/v1/networks`` and ``pbxfw import``; this test gives each of them
the same bad network and checks that they refuse it with the same message
text, naming the field (a document puts ``networks[i].`` before it), and
store nothing. The unit tests below pin the validator's own contract.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st

from pbxfw.domain.networks import (
    Network,
    NetworkIndex,
    Verdict,
    most_specific,
    permanent_networks,
    validate_network,
)
from pbxfw.domain.services import BUILTIN_KEYS
from pbxfw.errors import ConflictError, ValidationError
from pbxfw.storage.db import database_url
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.users import UserService
from pbxfw.web.app import create_app
from tests.helpers import dump_database
from tests.web.conftest import ADMIN, CLIENT, PASSWORD, TestClient
from tests.web.fakes import FakeApplier

OFFICE = {"name": "Office", "subnet": "192.168.1.0/24"}


@dataclass(frozen=True)
class Case:
    """A network as the REST body has it; ``cli``: the same as ``network add`` arguments."""

    body: dict[str, Any]
    cli: list[str] | None
    #: (field, message) the use case names: REST and CLI as they are, import after ``networks[1].``
    expected: tuple[str, str]
    #: The field the document names, when its form of the input differs (services.KEY).
    document_field: str | None = None


KNOWN = "known services: " + ", ".join(BUILTIN_KEYS)
CASES = {
    "bad subnet": Case(
        {"name": "Bad", "subnet": "10.0.0.300/8"},
        ["Bad", "10.0.0.300/8"],
        ("subnet", "'10.0.0.300' is not an IPv4 address: octet 300 is over 255"),
    ),
    "name clash": Case(
        {"name": " OFFICE", "subnet": "10.9.0.0/16"},
        [" OFFICE", "10.9.0.0/16"],
        (
            "name",
            "a network named 'Office' exists already "
            "(names are compared without regard to case and surrounding space)",
        ),
    ),
    "empty name": Case(
        {"name": "  ", "subnet": "10.9.0.0/16"},
        ["  ", "10.9.0.0/16"],
        ("name", "is empty; give the network a name"),
    ),
    "duplicate subnet": Case(
        {"name": "Again", "subnet": "192.168.1.7/24"},
        ["Again", "192.168.1.7/24"],
        ("subnet", "192.168.1.0/24 is already the subnet of network 'Office'"),
    ),
    "unknown service key": Case(
        {"name": "Lab", "subnet": "10.9.0.0/16", "services": {"telnet": "allow"}},
        None,  # the CLI names services with --allow; see the next case
        ("services.telnet", f"unknown service 'telnet'; {KNOWN}"),
    ),
    "unknown service key (allow)": Case(
        {"name": "Lab", "subnet": "10.9.0.0/16", "allow": ["telnet"]},
        ["Lab", "10.9.0.0/16", "--allow", "telnet"],
        ("allow", f"unknown service 'telnet'; {KNOWN}"),
        document_field="services.telnet",  # a document has no allow list
    ),
    # The CLI takes no verdicts (only --allow/--block): REST and import only.
    "bad verdict": Case(
        {"name": "Lab", "subnet": "10.9.0.0/16", "services": {"sip": "maybe"}},
        None,
        ("services.sip", "'maybe' must be allow or block"),
    ),
    "description too long": Case(
        {"name": "Lab", "subnet": "10.9.0.0/16", "description": "x" * 256},
        ["Lab", "10.9.0.0/16", "--description", "x" * 256],
        ("description", "is 256 characters long; the limit is 255"),
    ),
}


def _document_entry(body: dict[str, Any]) -> dict[str, Any]:
    """The body as a document's network: ``allow`` becomes ``services``."""
    entry = {k: v for k, v in body.items() if k not in ("allow", "block")}
    services = dict(entry.get("services", {}))
    services.update(dict.fromkeys(body.get("allow", ()), "allow"))
    services.update(dict.fromkeys(body.get("block", ()), "block"))
    if services:
        entry["services"] = services
    return entry


@pytest.fixture
def api(
    db_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The real application over ``db_path`` (the file the ``cli`` fixture uses) with Office."""
    import pbxfw.usecases.users as users

    monkeypatch.setattr(
        users, "PasswordHasher", lambda: PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    )
    store = Store.open(database_url(str(db_path)), create=True)
    try:
        ConfigService(store).init()
        ConfigService(store).add_network(NetworkChange(OFFICE["name"], OFFICE["subnet"]))
        UserService(store).set_password(ADMIN, PASSWORD)
        app = create_app(
            store, applier=FakeApplier(), secret_key=b"k" * 32, web_log=tmp_path / "web.log"
        )
        with TestClient(app, client=CLIENT) as client:
            answer = client.post(
                "/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD}
            )
            assert answer.status_code == 200, answer.text
            yield client, {"Authorization": f"Bearer {answer.json()['access_token']}"}
    finally:
        store.close()


def _cli_errors(stderr: str) -> list[tuple[str, str]]:
    """``error: FIELD: MESSAGE`` lines as (field, message)."""
    found = re.findall(r"^error: ([^:]+): (.*)$", stderr, flags=re.MULTILINE)
    return [(field, message) for field, message in found]


@pytest.mark.parametrize("name", list(CASES))
def test_the_same_bad_network_reads_the_same_through_cli_rest_and_import(
    api: tuple[TestClient, dict[str, str]], cli: Any, db_path: Path, tmp_path: Path, name: str
) -> None:
    case = CASES[name]
    client, auth = api
    before = dump_database(db_path)
    field, message = case.expected

    answer = client.post("/api/v1/networks", headers=auth, json=case.body)
    conflict = name in ("name clash", "duplicate subnet")
    assert answer.status_code == (409 if conflict else 422), answer.text
    rest = [(".".join(e["loc"][1:]), e["msg"]) for e in answer.json()["detail"]]
    assert rest == [(field, message)]
    assert dump_database(db_path) == before

    if case.cli is not None:
        result = cli("network", "add", *case.cli)
        assert result.exit_code == 2, result.stderr
        assert _cli_errors(result.stderr) == [(field, message)]
        assert dump_database(db_path) == before

    document = {"networks": [OFFICE, _document_entry(case.body)]}
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    result = cli("import", str(path))
    assert result.exit_code == 2, result.stderr
    where = case.document_field or field
    assert _cli_errors(result.stderr) == [(f"networks[1].{where}", message)]
    assert dump_database(db_path) == before


def test_host_bits_give_the_same_note_through_cli_rest_and_import(
    api: tuple[TestClient, dict[str, str]], cli: Any, tmp_path: Path
) -> None:
    client, auth = api
    note = "10.9.0.5/16 has host bits set; stored as 10.9.0.0/16"

    answer = client.post(
        "/api/v1/networks", headers=auth, json={"name": "Rest", "subnet": "10.9.0.5/16"}
    )
    assert answer.status_code == 201, answer.text
    assert answer.headers["x-pbxfw-note"] == note
    assert answer.json()["subnet"] == "10.9.0.0/16"

    result = cli("network", "add", "Cli", "10.8.0.5/16")
    assert result.exit_code == 0, result.stderr
    assert "note: 10.8.0.5/16 has host bits set; stored as 10.8.0.0/16" in result.stderr

    path = tmp_path / "doc.json"
    path.write_text(json.dumps({"networks": [OFFICE, {"name": "Doc", "subnet": "10.9.0.5/16"}]}))
    result = cli("import", str(path))
    assert result.exit_code == 0, result.stderr
    assert f"note: networks[1]: {note}" in result.stderr
    exported = json.loads(cli("export").stdout)
    assert [n["subnet"] for n in exported["networks"] if n["name"] == "Doc"] == ["10.9.0.0/16"]


# -- the validator's contract ------------------------------------------------------------

KEYS = ("sip", "ssh")


def _net(name: str, subnet: str, net_id: int, **verdicts: Verdict) -> Network:
    services = {k: verdicts.get(k, Verdict.BLOCK) for k in KEYS}
    return Network(name, ipaddress.ip_network(subnet), services, id=net_id)


def test_a_new_network_inherits_the_verdicts_of_the_closest_network_containing_it() -> None:
    index = NetworkIndex(
        [_net("Wide", "10.0.0.0/8", 1, sip=Verdict.ALLOW), _net("Narrow", "10.1.0.0/16", 2)]
    )
    inside, notes = validate_network(
        {"name": "Lab", "subnet": "10.1.2.0/24", "allow": ["ssh"]}, index, KEYS
    )
    assert inside.services == {"sip": Verdict.BLOCK, "ssh": Verdict.ALLOW} and notes == []
    beside, _ = validate_network({"name": "Lab", "subnet": "10.2.0.0/16"}, index, KEYS)
    assert beside.services == {"sip": Verdict.ALLOW, "ssh": Verdict.BLOCK}
    given, _ = validate_network({"name": "Lab", "subnet": "10.2.0.0/16"}, index, KEYS, base={})
    assert given.services == {"sip": Verdict.BLOCK, "ssh": Verdict.BLOCK}


def test_every_problem_is_reported_at_once_keyed_by_field() -> None:
    with pytest.raises(ValidationError) as caught:
        validate_network(
            {"name": 5, "subnet": "x", "local": "yes", "services": [], "id": 0, "allow": "sip"},
            NetworkIndex(),
            KEYS,
        )
    assert not isinstance(caught.value, ConflictError)
    assert [e.field for e in caught.value.errors] == [
        "name",
        "subnet",
        "local",
        "id",
        "allow",
        "services",
    ]


def test_conflicts_alone_are_a_conflict_and_come_with_other_errors_otherwise() -> None:
    index = NetworkIndex([_net("Office", "10.1.0.0/16", 1)])
    with pytest.raises(ConflictError) as caught:
        validate_network({"name": "office", "subnet": "10.1.0.0/16", "id": 1}, index, KEYS)
    assert [e.field for e in caught.value.errors] == ["name", "subnet", "id"]
    assert "1 is already the id of network 'Office'" in str(caught.value)
    with pytest.raises(ValidationError) as refused:
        validate_network({"name": "office", "subnet": "10.1.0.0/16", "local": 1}, index, KEYS)
    assert type(refused.value) is ValidationError
    assert [e.field for e in refused.value.errors] == ["local", "name", "subnet"]


def test_a_change_replaces_only_the_fields_given_and_checks_only_what_changed() -> None:
    # Two spellings of one name, stored before names were compared casefolded.
    office, other = _net("office", "10.1.0.0/16", 1), _net("Office", "10.2.0.0/16", 2)
    index = NetworkIndex([office, other])
    changed, _ = validate_network({"allow": ["ssh"], "local": True}, index, KEYS, current=office)
    assert changed == office.with_changes(
        services={"sip": Verdict.BLOCK, "ssh": Verdict.ALLOW}, local=True
    )
    with pytest.raises(ConflictError):
        validate_network({"name": "OFFICE"}, index, KEYS, current=office)
    renamed, _ = validate_network({"name": " office "}, index, KEYS, current=office)
    assert renamed == office


def test_a_permanent_network_keeps_its_subnet() -> None:
    internet = permanent_networks(KEYS)[0].with_changes(id=1)
    index = NetworkIndex([internet])
    with pytest.raises(ValidationError) as caught:
        validate_network({"subnet": "10.0.0.0/8"}, index, KEYS, current=internet)
    assert caught.value.errors[0].field == "subnet"
    assert "'Internet' is permanent; its subnet stays 0.0.0.0/0" in str(caught.value)
    same, _ = validate_network(
        {"subnet": "0.0.0.0/0", "name": "Net"}, index, KEYS, current=internet
    )
    assert same.subnet == internet.subnet and same.name == "Net"


_subnets = st.builds(
    lambda v6, value, prefix: ipaddress.ip_network(
        ((value % 2**128) if v6 else (value % 2**32), prefix % (129 if v6 else 33)),
        strict=False,
    ),
    st.booleans(),
    st.integers(min_value=0, max_value=2**128 - 1),
    st.integers(min_value=0, max_value=128),
)


@given(st.lists(_subnets, max_size=12, unique=True), _subnets)
def test_the_index_finds_the_parent_most_specific_finds(
    subnets: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
    subnet: ipaddress.IPv4Network | ipaddress.IPv6Network,
) -> None:
    networks = [Network(f"n{i}", s, id=i + 1) for i, s in enumerate(subnets)]
    assert NetworkIndex(networks).parent(subnet) == most_specific(subnet, networks)
