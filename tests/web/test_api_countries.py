"""``/api/v1/countries`` and ``/api/v1/geo`` (issue 17): success, 401, 422 naming the field."""

from __future__ import annotations

from pathlib import Path

from pbxfw.storage.repository import Store
from pbxfw.usecases.geo import GeoService
from tests.web.conftest import TestClient
from tests.web.test_api import locs

API = "/api/v1"


def load(store: Store, tmp_path: Path) -> None:
    data = tmp_path / "c.csv"
    data.write_text("198.51.100.0/24,DE\n203.0.113.0/24,CN\n")
    GeoService(store).import_file(data, now=1_796_428_800.0, built="2026-12-01")


def test_rules_are_created_read_changed_and_deleted(
    client: TestClient, auth: dict[str, str], store: Store, tmp_path: Path
) -> None:
    load(store, tmp_path)
    answer = client.post(
        f"{API}/countries",
        headers=auth,
        json={"name": "DACH", "codes": ["de", "AT", "CH"], "allow": ["sip"]},
    )
    assert answer.status_code == 201, answer.text
    dach = answer.json()
    assert dach == {
        "id": dach["id"],
        "name": "DACH",
        "codes": ["AT", "CH", "DE"],
        "services": {"sip": "allow"},
    }
    body = {"name": "Elsewhere", "codes": ["*"], "block": ["sip"]}
    elsewhere = client.post(f"{API}/countries", headers=auth, json=body).json()
    assert [r["name"] for r in client.get(f"{API}/countries", headers=auth).json()] == [
        "DACH",
        "Elsewhere",
    ]
    assert client.patch(f"{API}/settings", headers=auth, json={"firewall_enabled": True}).is_success
    check = client.get(
        f"{API}/check", headers=auth, params={"address": "203.0.113.9", "service": "sip"}
    ).json()
    assert check["verdict"] == "block"
    assert check["country"] == {"code": "CN", "rule": "Elsewhere"}
    plain = client.get(
        f"{API}/check", headers=auth, params={"address": "203.0.113.9", "service": "ssh"}
    ).json()
    assert "country" not in plain
    found = client.get(f"{API}/countries/lookup", headers=auth, params={"address": "198.51.100.9"})
    assert found.json() == {
        "address": "198.51.100.9",
        "country": "DE",
        "range": "198.51.100.0-198.51.100.255",
        "rule": "DACH",
    }
    changed = client.patch(
        f"{API}/countries/{dach['id']}", headers=auth, json={"codes": ["DE", "AT"]}
    )
    assert changed.json()["codes"] == ["AT", "DE"]
    assert client.get(f"{API}/countries/{dach['id']}", headers=auth).json()["codes"] == [
        "AT",
        "DE",
    ]
    assert client.delete(f"{API}/countries/{elsewhere['id']}", headers=auth).status_code == 204
    assert client.get(f"{API}/countries/{elsewhere['id']}", headers=auth).status_code == 404
    status = client.get(f"{API}/geo", headers=auth).json()
    assert (status["ipv4_ranges"], status["ipv6_ranges"], status["date"]) == (2, 0, "2026-12-01")


def test_refusals_name_the_field_and_store_nothing(
    client: TestClient, auth: dict[str, str]
) -> None:
    assert client.get(f"{API}/countries").status_code == 401
    assert client.get(f"{API}/geo").status_code == 401
    client.post(f"{API}/countries", headers=auth, json={"name": "DACH", "codes": ["DE"]})
    for body, field in (
        ({"name": "X", "codes": ["XX"]}, "codes"),
        ({"name": "Y", "codes": ["DE"]}, "codes"),
        ({"name": "dach", "codes": ["FR"]}, "name"),
        ({"name": "Z", "codes": ["FR"], "allow": ["telnet"]}, "allow"),
        ({"name": "Z", "codes": "FR"}, "codes"),
    ):
        answer = client.post(f"{API}/countries", headers=auth, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert any(field in loc for loc in locs(answer)), (body, answer.json())
    assert len(client.get(f"{API}/countries", headers=auth).json()) == 1
    answer = client.get(f"{API}/countries/lookup", headers=auth, params={"address": "nope"})
    assert answer.status_code == 422
    no_db = client.get(f"{API}/geo", headers=auth).json()
    assert no_db["source"] is None and "no country database" in no_db["warning"]
