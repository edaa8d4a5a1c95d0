"""Input the REST API refuses (issue 13, point 11), through the real application.

Ids that cannot name a row are 404 like any unknown id; request bodies are
strict (no text as booleans, no booleans as numbers, no numbers as text) and
answer 422 naming the field; names are unique without regard to case and
surrounding space. After every refusal the stored configuration is unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from tests.helpers import dump_database
from tests.web.conftest import TestClient
from tests.web.fakes import FakeApplier
from tests.web.test_api import API, locs
from tests.web.test_pages import log_in

#: Whole numbers that are not ids: beyond 64 bits, the first beyond, negative, zero.
NOT_IDS = ["99999999999999999999", "9223372036854775808", "-1", "0"]


@pytest.fixture
def office(store: Store) -> int:
    network, _ = ConfigService(store).add_network(
        NetworkChange(name="Office", subnet="192.168.1.0/24", allow=["ssh"])
    )
    assert network.id is not None
    return network.id


# -- ids ------------------------------------------------------------------------------


@pytest.mark.parametrize("ref", NOT_IDS)
def test_an_id_out_of_range_is_404_for_every_network_route(
    client: TestClient, auth: dict[str, str], db_path: Path, office: int, ref: str
) -> None:
    before = dump_database(db_path)
    url = f"{API}/networks/{ref}"
    for answer in (
        client.get(url, headers=auth),
        client.patch(url, headers=auth, json={"local": True}),
        client.delete(url, headers=auth),
    ):
        assert answer.status_code == 404, answer.text
        assert answer.json() == {"detail": f"no network {int(ref)}; see `pbxfw network list`"}
    assert dump_database(db_path) == before


def test_the_largest_id_is_looked_up_and_not_found(
    client: TestClient, auth: dict[str, str]
) -> None:
    assert client.get(f"{API}/networks/{2**63 - 1}", headers=auth).status_code == 404


def test_a_network_named_like_a_huge_id_is_still_not_found_by_id(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    ConfigService(store).add_network(NetworkChange(name=NOT_IDS[0], subnet="10.9.0.0/16"))
    assert client.get(f"{API}/networks/{NOT_IDS[0]}", headers=auth).status_code == 404


@pytest.mark.parametrize("ref", NOT_IDS)
def test_the_network_pages_answer_404_for_an_id_out_of_range(
    client: TestClient, db_path: Path, office: int, ref: str
) -> None:
    token = log_in(client)
    before = dump_database(db_path)
    assert client.get(f"/networks/{ref}/edit").status_code == 404
    posted = client.post(f"/networks/{ref}/edit", data={"csrf_token": token, "name": "X"})
    assert posted.status_code == 404
    # Deleting goes back to the table with the error, as for any unknown id.
    deleted = client.post(f"/networks/{ref}/delete", data={"csrf_token": token})
    assert deleted.url.path == "/firewall" and f"no network {int(ref)}" in deleted.text
    assert dump_database(db_path) == before


# -- strict bodies --------------------------------------------------------------------

#: (method, path, a valid body, the field to spoil, a value of the wrong JSON type)
STRICT = [
    # booleans: no text, no numbers
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "local", "yes"),
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "local", "true"),
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "local", 1),
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "never_block", "on"),
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "never_block", 0),
    ("PATCH", "/networks/{office}", {}, "local", "yes"),
    ("PATCH", "/networks/{office}", {}, "never_block", 1),
    # text: no numbers, no booleans
    ("POST", "/networks", {"subnet": "10.1.0.0/16"}, "name", 5),
    ("POST", "/networks", {"name": "N"}, "subnet", 167837696),
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "description", True),
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "allow", ["ssh", 1]),
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "block", "ssh"),
    ("POST", "/networks", {"name": "N", "subnet": "10.1.0.0/16"}, "services", {"ssh": True}),
    ("PATCH", "/networks/{office}", {}, "name", 7),
    ("PATCH", "/networks/{office}", {}, "subnet", False),
    ("POST", "/services", {"key": "prov", "tcp": "5000"}, "udp", 69),
    ("POST", "/services", {"tcp": "5000"}, "key", 1),
    ("POST", "/services", {"key": "prov", "tcp": "5000"}, "label", False),
    ("POST", "/bans", {"address": "203.0.113.7"}, "jail", 1),
    ("POST", "/bans", {"jail": "manual"}, "address", 3405803783),
    ("POST", "/bans", {"address": "203.0.113.7"}, "reason", 1.5),
    ("POST", "/bans/import", {}, "lines", ["203.0.113.0/24", 7]),
    # whole numbers: no booleans, no text, no fractions
    ("POST", "/bans", {"address": "203.0.113.7"}, "seconds", True),
    ("POST", "/bans", {"address": "203.0.113.7"}, "seconds", "600"),
    ("POST", "/bans", {"address": "203.0.113.7"}, "seconds", 600.0),
    ("POST", "/bans/import", {"lines": ["203.0.113.0/24"]}, "seconds", False),
    ("POST", "/bans/import", {"lines": ["203.0.113.0/24"]}, "seconds", "60"),
    ("POST", "/apply", {}, "confirm_seconds", True),
    ("POST", "/apply", {}, "confirm_seconds", "60"),
    ("POST", "/apply", {}, "confirm_seconds", 60.0),
    ("POST", "/apply", {}, "confirm_seconds", 60.5),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "field", "value"),
    STRICT,
    ids=[f"{m} {p} {f}={v!r}" for m, p, _, f, v in STRICT],
)
def test_a_value_of_the_wrong_json_type_is_422_naming_the_field_and_stores_nothing(
    client: TestClient,
    auth: dict[str, str],
    db_path: Path,
    office: int,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str,
    value: object,
) -> None:
    before = dump_database(db_path)
    url = API + path.format(office=office)
    answer = client.request(method, url, headers=auth, json={**body, field: value})
    assert answer.status_code == 422, answer.text
    assert all(loc[:2] == ["body", field] for loc in locs(answer)), locs(answer)
    assert dump_database(db_path) == before


def test_the_same_bodies_with_json_types_are_taken(
    client: TestClient, auth: dict[str, str], office: int
) -> None:
    created = client.post(
        f"{API}/networks",
        headers=auth,
        json={"name": "N", "subnet": "10.1.0.0/16", "local": True, "never_block": False},
    )
    assert created.status_code == 201, created.text
    patched = client.patch(f"{API}/networks/{office}", headers=auth, json={"local": True})
    assert patched.status_code == 200 and patched.json()["local"] is True
    ban = client.post(f"{API}/bans", headers=auth, json={"address": "203.0.113.7", "seconds": 60})
    assert ban.status_code == 201, ban.text
    applied = client.post(f"{API}/apply", headers=auth, json={"confirm_seconds": 60})
    assert applied.status_code == 200, applied.text


# -- names ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["internet", "Internet ", " INTERNET", "ｉｎｔｅｒｎｅｔ"])
def test_a_name_taken_in_another_spelling_is_409_naming_the_clash(
    client: TestClient, auth: dict[str, str], db_path: Path, name: str
) -> None:
    before = dump_database(db_path)
    answer = client.post(
        f"{API}/networks", headers=auth, json={"name": name, "subnet": "10.0.0.0/8"}
    )
    assert answer.status_code == 409, answer.text
    assert locs(answer) == [["body", "name"]]
    message = answer.json()["detail"][0]["msg"]
    assert "a network named 'Internet' exists already" in message
    if name.strip() != "Internet":  # the stripped name differs: the message says why
        assert "without regard to case and surrounding space" in message
    assert dump_database(db_path) == before


def test_renaming_onto_another_spelling_is_409(
    client: TestClient, auth: dict[str, str], db_path: Path, office: int
) -> None:
    before = dump_database(db_path)
    answer = client.patch(f"{API}/networks/{office}", headers=auth, json={"name": "internet "})
    assert answer.status_code == 409 and locs(answer) == [["body", "name"]]
    assert dump_database(db_path) == before


def test_surrounding_space_is_dropped_and_a_network_may_change_its_own_case(
    client: TestClient, auth: dict[str, str], office: int
) -> None:
    created = client.post(
        f"{API}/networks", headers=auth, json={"name": "  Branch  ", "subnet": "10.2.0.0/16"}
    )
    assert created.status_code == 201 and created.json()["name"] == "Branch"
    renamed = client.patch(f"{API}/networks/{office}", headers=auth, json={"name": "OFFICE "})
    assert renamed.status_code == 200 and renamed.json()["name"] == "OFFICE"


def test_a_custom_service_label_taken_in_another_spelling_is_409(
    client: TestClient, auth: dict[str, str], db_path: Path
) -> None:
    first = client.post(
        f"{API}/services", headers=auth, json={"key": "prov", "label": "Provisioning", "tcp": "1"}
    )
    assert first.status_code == 201, first.text
    before = dump_database(db_path)
    for key, label in (("prov2", " provisioning"), ("ssh2", "ssh")):
        answer = client.post(
            f"{API}/services", headers=auth, json={"key": key, "label": label, "tcp": "2"}
        )
        assert answer.status_code == 409, answer.text
        assert locs(answer) == [["body", "label"]]
    assert dump_database(db_path) == before


def test_the_network_form_still_takes_text_and_refuses_a_clash(
    client: TestClient, store: Store, db_path: Path
) -> None:
    token = log_in(client)
    added = client.post(
        "/networks/new",
        data={
            "csrf_token": token,
            "name": " LAN ",
            "address": "192.168.5.0",
            "prefix": "24",
            "local": "on",
            "service_ssh": "allow",
        },
    )
    assert added.status_code == 200 and added.url.path == "/firewall", added.text
    lan = ConfigService(store).network("LAN")
    assert lan.local and lan.services["ssh"] == "allow"
    before = dump_database(db_path)
    clash = client.post(
        "/networks/new",
        data={"csrf_token": token, "name": "lan", "address": "192.168.6.0", "prefix": "24"},
    )
    assert clash.status_code == 422
    assert "a network named &#39;LAN&#39; exists already" in clash.text
    assert dump_database(db_path) == before


# -- numbers inside text --------------------------------------------------------------


@pytest.mark.parametrize("subnet", ["10.0.0.0/²", "10.0.0.0/" + "9" * 5000, "10.0.0.0/١"])
def test_a_prefix_that_is_not_ascii_digits_is_422(
    client: TestClient, auth: dict[str, str], db_path: Path, subnet: str
) -> None:
    before = dump_database(db_path)
    answer = client.post(f"{API}/networks", headers=auth, json={"name": "X", "subnet": subnet})
    assert answer.status_code == 422 and locs(answer) == [["body", "subnet"]]
    assert dump_database(db_path) == before


@pytest.mark.parametrize("prefix", ["²", "9" * 5000])
def test_the_forms_take_any_text_in_number_fields(
    client: TestClient, db_path: Path, applier: FakeApplier, prefix: str
) -> None:
    token = log_in(client)
    before = dump_database(db_path)
    form = {"csrf_token": token, "name": "X", "address": "10.0.0.0", "prefix": prefix}
    answer = client.post("/networks/new", data=form)
    assert answer.status_code == 422 and "the prefix length must be a number" in answer.text
    assert dump_database(db_path) == before
    # A confirmation window that is not a number gets the default (60 s).
    applied = client.post(
        "/apply", data={"csrf_token": token, "confirm": "on", "confirm_seconds": prefix}
    )
    assert applied.status_code == 200
    assert applier.calls[-1][0] == "apply" and applier.calls[-1][1][0] == 60


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "prov\n", "label": "P", "tcp": "1"}, "key"),
        ({"key": "prov", "tcp": "9" * 5000}, "tcp"),
        ({"key": "prov", "udp": "1-" + "9" * 5000}, "udp"),
    ],
)
def test_a_custom_service_key_or_port_that_only_looks_right_is_422(
    client: TestClient, auth: dict[str, str], db_path: Path, body: dict[str, str], field: str
) -> None:
    before = dump_database(db_path)
    answer = client.post(f"{API}/services", headers=auth, json=body)
    assert answer.status_code == 422, answer.text
    assert locs(answer) == [["body", field]]
    assert dump_database(db_path) == before
