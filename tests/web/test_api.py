"""The REST API, route by route: success, 401 without a token, 422 naming the field.

The API and the CLI share one configuration: what one writes the other reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.repository import Store
from pbxfw.storage.source_status import save_source_statuses
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.bans import BanService
from pbxfw.web.app import create_app
from tests.web.conftest import ADMIN, CLIENT, PASSWORD, TestClient
from tests.web.fakes import FakeApplier

API = "/api/v1"


def locs(answer: Any) -> list[list[Any]]:
    """The ``loc`` of every error of a 422/409 body."""
    return [error["loc"] for error in answer.json()["detail"]]


def network_id(client: TestClient, auth: dict[str, str], name: str) -> int:
    for network in client.get(f"{API}/networks", headers=auth).json():
        if network["name"] == name:
            return int(network["id"])
    raise AssertionError(f"no network {name}")


# -- authentication --------------------------------------------------------------------


def test_token_is_issued_for_the_right_password(client: TestClient) -> None:
    answer = client.post(f"{API}/auth/token", data={"username": ADMIN, "password": PASSWORD})
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 3600
    assert body["access_token"].count(".") == 1


def test_wrong_password_answers_401_and_is_recorded_for_the_web_jail(
    client: TestClient, web_log: Path
) -> None:
    answer = client.post(f"{API}/auth/token", data={"username": 'evil"\nuser', "password": "x"})
    assert answer.status_code == 401
    lines = web_log.read_text().splitlines()
    assert len(lines) == 1  # the newline in the name did not make a second line
    assert f"pbxfw-web: login failed from {CLIENT[0]} for user " in lines[0]
    assert '"evil\\"\\nuser"' in lines[0]


def test_the_token_form_names_its_missing_field(client: TestClient) -> None:
    answer = client.post(f"{API}/auth/token", data={"username": ADMIN})
    assert answer.status_code == 422
    assert ["body", "password"] in locs(answer)


def _protected_routes(app: FastAPI) -> list[tuple[str, str]]:
    schema = app.openapi()
    routes = []
    for path, operations in schema["paths"].items():
        for method in operations:
            if path != f"{API}/auth/token":
                routes.append((method.upper(), path))
    return routes


def test_every_route_but_the_token_route_answers_401_without_a_token(
    client: TestClient, app: FastAPI
) -> None:
    routes = _protected_routes(app)
    assert len(routes) >= 17
    for method, path in routes:
        url = (
            path.replace("{network_id}", "1").replace("{key}", "x").replace("{address}", "1.2.3.4")
        )
        for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic YTpi"}):
            # A body that would not even parse: the 401 still comes first.
            answer = client.request(method, url, headers=headers, content=b"{not json")
            assert answer.status_code == 401, (method, url, headers, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"


def test_unknown_api_paths_answer_401_without_a_token(client: TestClient) -> None:
    assert client.get(f"{API}/nothing-here").status_code == 401


def test_an_expired_token_is_refused(store: Store, web_log: Path) -> None:
    now = [1_000_000.0]
    app = create_app(
        store, secret_key="s" * 32, web_log=web_log, clock=lambda: now[0], token_ttl=60
    )
    with TestClient(app, client=CLIENT) as client:
        token = client.post(f"{API}/auth/token", data={"username": ADMIN, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert client.get(f"{API}/networks", headers=headers).status_code == 200
        now[0] += 61
        assert client.get(f"{API}/networks", headers=headers).status_code == 401


def test_a_token_from_another_secret_is_refused(
    store: Store, auth: dict[str, str], web_log: Path
) -> None:
    other = create_app(store, secret_key="another secret key!!", web_log=web_log)
    with TestClient(other) as client:
        assert client.get(f"{API}/networks", headers=auth).status_code == 401


def test_a_session_cookie_is_not_a_bearer_token(client: TestClient) -> None:
    client.get("/login")
    cookie = client.cookies.get("pbxfw_session")
    assert cookie
    answer = client.get(f"{API}/networks", headers={"Authorization": f"Bearer {cookie}"})
    assert answer.status_code == 401


def test_the_openapi_document_is_served_without_a_token(client: TestClient) -> None:
    answer = client.get(f"{API}/openapi.json")
    assert answer.status_code == 200
    paths = answer.json()["paths"]
    assert f"{API}/networks/{{network_id}}" in paths
    assert "/firewall" not in paths  # the page is not part of the API


# -- networks ---------------------------------------------------------------------------


def test_networks_list_starts_with_the_permanent_networks(
    client: TestClient, auth: dict[str, str]
) -> None:
    networks = client.get(f"{API}/networks", headers=auth).json()
    assert [n["subnet"] for n in networks] == ["0.0.0.0/0", "::/0"]
    assert set(networks[0]) == {
        "id",
        "name",
        "subnet",
        "services",
        "local",
        "never_block",
        "description",
    }
    assert networks[0]["services"]["sip"] == "allow" and networks[0]["services"]["ssh"] == "block"


def test_create_read_update_delete_a_network(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.post(
        f"{API}/networks",
        headers=auth,
        json={"name": "Office", "subnet": "192.168.1.77/24", "allow": ["ssh"], "local": True},
    )
    assert answer.status_code == 201, answer.text
    office = answer.json()
    assert office["subnet"] == "192.168.1.0/24"
    assert "host bits" in answer.headers["x-pbxfw-note"]
    assert office["services"]["ssh"] == "allow"
    assert office["services"]["sip"] == "allow"  # inherited from the Internet network
    assert office["local"] is True and office["never_block"] is False

    url = f"{API}/networks/{office['id']}"
    assert client.get(url, headers=auth).json() == office

    changed = client.patch(
        url, headers=auth, json={"never_block": True, "services": {"web": "allow"}}
    )
    assert changed.status_code == 200
    assert changed.json()["never_block"] is True and changed.json()["services"]["web"] == "allow"
    assert changed.json()["local"] is True  # not named, not changed

    assert client.delete(url, headers=auth).status_code == 204
    assert client.get(url, headers=auth).status_code == 404


def test_an_invalid_subnet_answers_422_naming_the_field_and_stores_nothing(
    client: TestClient, auth: dict[str, str]
) -> None:
    answer = client.post(
        f"{API}/networks", headers=auth, json={"name": "Bad", "subnet": "10.0.0.300/8"}
    )
    assert answer.status_code == 422
    assert locs(answer) == [["body", "subnet"]]
    assert "octet 300 is over 255" in answer.json()["detail"][0]["msg"]
    assert len(client.get(f"{API}/networks", headers=auth).json()) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subnet": "10.0.0.0/8"}, "name"),
        ({"name": "A", "subnet": "10.0.0.0/8", "colour": "red"}, "colour"),
        ({"name": "A", "subnet": "10.0.0.0/8", "local": "perhaps"}, "local"),
        ({"name": "", "subnet": "10.0.0.0/8"}, "name"),
        ({"name": "A", "subnet": "10.0.0.0/33"}, "subnet"),
        ({"name": "A", "subnet": "10.0.0.0/8", "allow": ["telnet"]}, "allow"),
        ({"name": "A", "subnet": "10.0.0.0/8", "services": {"sip": "maybe"}}, "services"),
        ({"name": "A" * 65, "subnet": "10.0.0.0/8"}, "name"),
    ],
)
def test_invalid_network_bodies_name_the_field(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    answer = client.post(f"{API}/networks", headers=auth, json=body)
    assert answer.status_code == 422, answer.text
    assert any(loc[:2] == ["body", field] for loc in locs(answer)), locs(answer)


def test_a_taken_name_answers_409_naming_the_field(
    client: TestClient, auth: dict[str, str]
) -> None:
    answer = client.post(
        f"{API}/networks", headers=auth, json={"name": "Internet", "subnet": "10.0.0.0/8"}
    )
    assert answer.status_code == 409
    assert locs(answer)[0][:2] == ["body", "name"]


def test_a_permanent_network_cannot_be_deleted_nor_moved(
    client: TestClient, auth: dict[str, str]
) -> None:
    internet = network_id(client, auth, "Internet")
    assert client.delete(f"{API}/networks/{internet}", headers=auth).status_code == 409
    moved = client.patch(f"{API}/networks/{internet}", headers=auth, json={"subnet": "10.0.0.0/8"})
    assert moved.status_code == 422 and locs(moved) == [["body", "subnet"]]
    renamed = client.patch(
        f"{API}/networks/{internet}", headers=auth, json={"services": {"ssh": "allow"}}
    )
    assert renamed.status_code == 200


def test_a_network_is_found_by_id_only(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    ConfigService(store).add_network(NetworkChange(name="999", subnet="10.9.0.0/16"))
    assert client.get(f"{API}/networks/999", headers=auth).status_code == 404
    assert client.get(f"{API}/networks/abc", headers=auth).status_code == 422


def test_the_cli_and_the_api_see_one_configuration(
    client: TestClient, auth: dict[str, str], cli: Any
) -> None:
    assert cli("network", "add", "Branch", "10.20.0.0/16", "--allow", "ssh").exit_code == 0
    from_api = {n["name"]: n for n in client.get(f"{API}/networks", headers=auth).json()}
    assert from_api["Branch"]["subnet"] == "10.20.0.0/16"
    assert from_api["Branch"]["services"]["ssh"] == "allow"

    client.post(
        f"{API}/networks", headers=auth, json={"name": "VPN", "subnet": "fd00::/64", "local": True}
    )
    listed = json.loads(cli("network", "list", "--json").stdout)
    assert {n["name"]: n["subnet"] for n in listed}["VPN"] == "fd00::/64"

    assert cli("settings", "set", "sip_port=5070").exit_code == 0
    assert client.get(f"{API}/settings", headers=auth).json()["sip_port"] == 5070


def test_a_network_added_through_the_use_case_is_served(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    network, _ = ConfigService(store).add_network(NetworkChange(name="Lab", subnet="172.16.0.0/12"))
    assert client.get(f"{API}/networks/{network.id}", headers=auth).json()["name"] == "Lab"


# -- services ---------------------------------------------------------------------------


def test_services_list_has_resolved_ports(client: TestClient, auth: dict[str, str]) -> None:
    services = client.get(f"{API}/services", headers=auth).json()
    sip = next(s for s in services if s["key"] == "sip")
    assert sip["builtin"] is True
    assert {"protocol": "udp", "from": 10000, "to": 10800} in sip["ports"]
    assert [s["key"] for s in services][:8] == [
        "sip",
        "iax",
        "web",
        "ssh",
        "ami",
        "ajam",
        "icmp",
        "cti",
    ]


def test_custom_services_are_added_and_removed(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.post(
        f"{API}/services",
        headers=auth,
        json={"key": "prov", "label": "Provisioning", "tcp": "8080,9000-9010"},
    )
    assert answer.status_code == 201, answer.text
    assert answer.json()["ports"] == [
        {"protocol": "tcp", "from": 8080, "to": 8080},
        {"protocol": "tcp", "from": 9000, "to": 9010},
    ]
    internet = client.get(f"{API}/networks", headers=auth).json()[0]
    assert internet["services"]["prov"] == "block"
    assert client.delete(f"{API}/services/prov", headers=auth).status_code == 204
    assert client.delete(f"{API}/services/prov", headers=auth).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "Bad Key", "tcp": "80"}, "key"),
        ({"key": "sip", "tcp": "80"}, "key"),
        ({"key": "ok", "tcp": "70000"}, "tcp"),
        ({"key": "ok"}, "tcp"),
        ({"key": "ok", "udp": "9-1"}, "udp"),
        ({"tcp": "80"}, "key"),
    ],
)
def test_invalid_custom_services_name_the_field(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    answer = client.post(f"{API}/services", headers=auth, json=body)
    assert answer.status_code == 422
    assert ["body", field] in locs(answer)


def test_a_builtin_service_cannot_be_removed(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.delete(f"{API}/services/sip", headers=auth)
    assert answer.status_code == 422 and locs(answer) == [["path", "key"]]


# -- settings ---------------------------------------------------------------------------


def test_settings_are_read_and_patched(client: TestClient, auth: dict[str, str]) -> None:
    settings = client.get(f"{API}/settings", headers=auth).json()
    assert settings["firewall_enabled"] is False and settings["sip_port"] == 5060
    answer = client.patch(
        f"{API}/settings",
        headers=auth,
        # Strict JSON types (issue 13): a switch is true/false, never "on"
        # (refused: test_settings_over_rest_are_strictly_typed); a list may be text.
        json={"firewall_enabled": True, "ips_preset": "paranoid", "cti_ports": "4222,8000"},
    )
    assert answer.status_code == 200
    body = answer.json()
    assert (
        body["firewall_enabled"] is True
        and body["ips_maxretry"] == 3
        and body["cti_ports"] == [4222, 8000]
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"sip_port": 70000}, "sip_port"),
        ({"rtp_port_from": 20000}, "rtp_port_from"),
        ({"colour": "red"}, "colour"),
        ({"ips_preset": "extreme"}, "ips_preset"),
        ({"ips_findtime": "soon"}, "ips_findtime"),
        ({"ips_whitelist": "10.0.0.300"}, "ips_whitelist"),
    ],
)
def test_invalid_settings_name_the_field_and_store_nothing(
    client: TestClient, auth: dict[str, str], changes: dict[str, Any], field: str
) -> None:
    before = client.get(f"{API}/settings", headers=auth).json()
    answer = client.patch(f"{API}/settings", headers=auth, json={"ssh_port": 2222, **changes})
    assert answer.status_code == 422
    assert ["body", field] in locs(answer)
    assert client.get(f"{API}/settings", headers=auth).json() == before


def test_settings_patch_must_be_an_object(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.patch(f"{API}/settings", headers=auth, json=[1, 2])
    assert answer.status_code == 422


# -- check ------------------------------------------------------------------------------


def test_check_names_the_deciding_network(client: TestClient, auth: dict[str, str]) -> None:
    client.patch(f"{API}/settings", headers=auth, json={"firewall_enabled": True})
    client.post(
        f"{API}/networks",
        headers=auth,
        json={"name": "Office", "subnet": "10.1.0.0/16", "allow": ["ssh"]},
    )
    answer = client.get(
        f"{API}/check", headers=auth, params={"address": "10.1.2.3", "service": "ssh"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["verdict"] == "allow" and body["network"]["name"] == "Office"
    outside = client.get(
        f"{API}/check", headers=auth, params={"address": "8.8.8.8", "service": "ssh"}
    ).json()
    assert outside["verdict"] == "block" and outside["network"]["name"] == "Internet"


def test_check_reports_a_ban(client: TestClient, auth: dict[str, str], store: Store) -> None:
    BanService(store).add("203.0.113.7", reason="test")
    body = client.get(
        f"{API}/check", headers=auth, params={"address": "203.0.113.7", "service": "sip"}
    ).json()
    assert body["verdict"] == "banned" and body["network"] is None


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"address": "300.1.1.1", "service": "sip"}, "address"),
        ({"address": "1.1.1.1", "service": "telnet"}, "service"),
        ({"service": "sip"}, "address"),
        ({"address": "1.1.1.1"}, "service"),
    ],
)
def test_check_names_a_bad_parameter(
    client: TestClient, auth: dict[str, str], params: dict[str, str], field: str
) -> None:
    answer = client.get(f"{API}/check", headers=auth, params=params)
    assert answer.status_code == 422
    assert ["query", field] in locs(answer)


# -- bans -------------------------------------------------------------------------------


def test_bans_are_listed_added_and_removed(client: TestClient, auth: dict[str, str]) -> None:
    assert client.get(f"{API}/bans", headers=auth).json() == []
    answer = client.post(
        f"{API}/bans",
        headers=auth,
        json={"address": "198.51.100.0/24", "seconds": 600, "reason": "scanner"},
    )
    assert answer.status_code == 201, answer.text
    ban = answer.json()
    assert (
        ban["address"] == "198.51.100.0/24" and ban["jail"] == "manual" and ban["remaining"] == 600
    )
    client.post(f"{API}/bans", headers=auth, json={"address": "2001:db8::5"})
    listed = client.get(f"{API}/bans", headers=auth).json()
    assert {b["address"] for b in listed} == {"198.51.100.0/24", "2001:db8::5"}

    assert client.delete(f"{API}/bans/198.51.100.0%2F24", headers=auth).status_code == 204
    assert client.delete(f"{API}/bans/2001:db8::5", headers=auth).status_code == 204
    assert client.get(f"{API}/bans", headers=auth).json() == []
    assert client.delete(f"{API}/bans/2001:db8::5", headers=auth).status_code == 404


def test_trust_never_blocks_an_address_and_lifts_its_bans(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    BanService(store).add("203.0.113.9")
    answer = client.post(f"{API}/bans/trust", headers=auth, json={"address": "203.0.113.9"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["created"] is True and body["lifted"] == ["203.0.113.9"]
    assert body["network"]["subnet"] == "203.0.113.9/32" and body["network"]["never_block"]
    assert client.get(f"{API}/bans", headers=auth).json() == []
    network = client.get(f"{API}/networks/{body['network']['id']}", headers=auth).json()
    assert network == body["network"]
    refused = client.post(f"{API}/bans", headers=auth, json={"address": "203.0.113.9"})
    assert refused.status_code == 422 and "never-block" in refused.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    "body",
    [
        {"address": "nonsense"},
        {"address": "0.0.0.0/0"},
        {"address": 42},
        {},
        {"address": "203.0.113.9", "never_block": True},
    ],
)
def test_trust_refuses_a_bad_body_and_stores_nothing(
    client: TestClient, auth: dict[str, str], store: Store, body: dict[str, Any]
) -> None:
    BanService(store).add("203.0.113.9")
    networks = client.get(f"{API}/networks", headers=auth).json()
    answer = client.post(f"{API}/bans/trust", headers=auth, json=body)
    assert answer.status_code == 422
    field = "never_block" if "never_block" in body else "address"
    assert locs(answer) == [["body", field]]
    assert client.get(f"{API}/networks", headers=auth).json() == networks
    assert [b["address"] for b in client.get(f"{API}/bans", headers=auth).json()] == ["203.0.113.9"]


def test_trust_needs_a_token(client: TestClient) -> None:
    answer = client.post(f"{API}/bans/trust", json={"address": "203.0.113.9"})
    assert answer.status_code == 401


def test_a_never_block_address_cannot_be_banned(client: TestClient, auth: dict[str, str]) -> None:
    client.post(
        f"{API}/networks",
        headers=auth,
        json={"name": "Office", "subnet": "10.0.0.0/8", "never_block": True},
    )
    answer = client.post(f"{API}/bans", headers=auth, json={"address": "10.1.1.1"})
    assert answer.status_code == 422 and locs(answer) == [["body", "address"]]
    assert "never-block" in answer.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"address": "nonsense"}, "address"),
        ({"address": "1.2.3.4", "jail": "nope"}, "jail"),
        ({"address": "1.2.3.4", "seconds": 0}, "seconds"),
        ({"address": "1.2.3.4", "seconds": "long"}, "seconds"),
        ({}, "address"),
    ],
)
def test_invalid_bans_name_the_field(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    answer = client.post(f"{API}/bans", headers=auth, json=body)
    assert answer.status_code == 422
    assert ["body", field] in locs(answer)


def test_unban_of_a_malformed_address_names_it(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.delete(f"{API}/bans/not-an-address", headers=auth)
    assert answer.status_code == 422 and locs(answer) == [["path", "address"]]


def test_bans_import(client: TestClient, auth: dict[str, str]) -> None:
    client.post(
        f"{API}/networks",
        headers=auth,
        json={"name": "Office", "subnet": "10.0.0.0/8", "never_block": True},
    )
    answer = client.post(
        f"{API}/bans/import",
        headers=auth,
        json={"lines": ["# blocklist", "203.0.113.0/24", "10.1.1.1", "2001:db8::/48"]},
    )
    assert answer.status_code == 200
    assert answer.json()["added"] == 2 and len(answer.json()["skipped"]) == 1
    bad = client.post(f"{API}/bans/import", headers=auth, json={"lines": ["1.2.3.4", "garbage"]})
    assert bad.status_code == 422 and locs(bad) == [["body", "line 2"]]


# -- apply ------------------------------------------------------------------------------


def test_apply_with_confirmation_and_keep(
    client: TestClient, auth: dict[str, str], applier: FakeApplier
) -> None:
    preview = client.get(f"{API}/apply", headers=auth).json()
    assert "table inet pbxfw" in preview["preview"] and preview["pending"] is None
    answer = client.post(f"{API}/apply", headers=auth, json={"confirm_seconds": 30})
    assert answer.status_code == 200 and answer.json()["status"] == "pending"
    assert applier.calls[-1] == ("apply", (30, CLIENT[0]))  # the anti-lockout rule gets the caller
    assert client.get(f"{API}/apply", headers=auth).json()["pending"]["status"] == "pending"
    assert client.post(f"{API}/apply/confirm", headers=auth).json()["status"] == "confirmed"
    assert applier.confirmed == 1
    assert client.post(f"{API}/apply/confirm", headers=auth).status_code == 404


def test_apply_and_roll_back(
    client: TestClient, auth: dict[str, str], applier: FakeApplier
) -> None:
    client.post(f"{API}/apply", headers=auth, json={"confirm_seconds": 30})
    assert client.post(f"{API}/apply/rollback", headers=auth).json()["status"] == "rolled_back"
    assert applier.rolled_back == 1


def test_apply_without_confirmation(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.post(f"{API}/apply", headers=auth, json={})
    assert answer.json()["status"] == "applied"


def test_apply_that_would_lock_the_caller_out_answers_409(
    client: TestClient, auth: dict[str, str], applier: FakeApplier
) -> None:
    applier.lockout = CLIENT[0]
    answer = client.post(f"{API}/apply", headers=auth, json={"confirm_seconds": 30})
    assert answer.status_code == 409
    assert CLIENT[0] in answer.json()["detail"]


@pytest.mark.parametrize("seconds", [0, 4, 3601, "soon"])
def test_apply_names_a_bad_confirmation_window(
    client: TestClient, auth: dict[str, str], seconds: object
) -> None:
    answer = client.post(f"{API}/apply", headers=auth, json={"confirm_seconds": seconds})
    assert answer.status_code == 422 and locs(answer) == [["body", "confirm_seconds"]]


def test_apply_without_a_dataplane_answers_503(store: Store, web_log: Path) -> None:
    app = create_app(store, web_log=web_log)
    with TestClient(app) as client:
        token = client.post(f"{API}/auth/token", data={"username": ADMIN, "password": PASSWORD})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        assert client.post(f"{API}/apply", headers=headers, json={}).status_code == 503
        assert client.get(f"{API}/apply", headers=headers).status_code == 503


# -- intrusion prevention ----------------------------------------------------------------


def test_ips_status(client: TestClient, auth: dict[str, str], store: Store) -> None:
    with store.write() as repo:
        repo.add_ips_counters("asterisk", lines=10, failures=3, bans=1)
    BanService(store).add("203.0.113.9")
    body = client.get(f"{API}/ips/status", headers=auth).json()
    assert body == {
        "enabled": True,
        "active_bans": 1,
        "jails": {"asterisk": {"lines": 10, "failures": 3, "bans": 1, "whitelisted": 0}},
        "sources": [],
    }


def test_ips_status_names_a_failing_source(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    """What the agent recorded in source_status (issue 13 item 5) is served as is."""
    with store.write() as repo:
        save_source_statuses(
            repo,
            [
                SourceStatus("/var/log/asterisk/messages", "asterisk", "", 100.0, 0, 100.0),
                SourceStatus("/tmp/folder", "ssh", "is a folder, not a file", 200.0, 3, 207.0),
            ],
        )
    sources = client.get(f"{API}/ips/status", headers=auth).json()["sources"]
    assert sources == [
        {
            "source": "/tmp/folder",
            "jail": "ssh",
            "ok": False,
            "error": "is a folder, not a file",
            "since": 200.0,
            "failures": 3,
            "updated_at": 207.0,
            "node": "",
        },
        {
            "source": "/var/log/asterisk/messages",
            "jail": "asterisk",
            "ok": True,
            "error": "",
            "since": 100.0,
            "failures": 0,
            "updated_at": 100.0,
            "node": "",
        },
    ]


def test_ips_status_is_one_answer_for_the_cli_and_the_api(
    client: TestClient, auth: dict[str, str], store: Store, cli: Any
) -> None:
    """``pbxfw ips status --json`` and ``GET /api/v1/ips/status`` read one use case:
    the same fields, the same values, for the same database (issue 14)."""
    with store.write() as repo:
        repo.add_ips_counters("ssh", lines=7, failures=2, whitelisted=1)
        save_source_statuses(
            repo, [SourceStatus("/tmp/folder", "ssh", "is a folder, not a file", 200.0, 3, 207.0)]
        )
    BanService(store).add("203.0.113.9")
    ConfigService(store).update_settings({"ips_enabled": False})
    rest = client.get(f"{API}/ips/status", headers=auth).json()
    result = cli("ips", "status", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout) == rest
    assert rest["enabled"] is False and rest["active_bans"] == 1
    assert rest["jails"]["ssh"]["whitelisted"] == 1 and rest["sources"][0]["failures"] == 3


def test_ips_status_sums_the_nodes_or_shows_one(
    client: TestClient, auth: dict[str, str], store: Store, cli: Any
) -> None:
    """Each node's agent keeps its own counters and sources (migration 0009):
    the whole fleet summed, or one node with ``?node=`` / ``--node``."""
    with store.write() as repo:
        repo.add_ips_counters("ssh", node="pbx-a", lines=3, failures=1)
        repo.add_ips_counters("ssh", node="pbx-b", lines=4, bans=2)
        save_source_statuses(
            repo,
            [
                SourceStatus("/var/log/auth.log", "ssh", "", 1.0, 0, 1.0, "pbx-a"),
                SourceStatus("/var/log/auth.log", "ssh", "gone", 1.0, 2, 3.0, "pbx-b"),
            ],
        )
    whole = client.get(f"{API}/ips/status", headers=auth).json()
    assert whole["jails"]["ssh"] == {"lines": 7, "failures": 1, "bans": 2, "whitelisted": 0}
    assert [(s["node"], s["ok"]) for s in whole["sources"]] == [("pbx-a", True), ("pbx-b", False)]
    one = client.get(f"{API}/ips/status", params={"node": "pbx-b"}, headers=auth).json()
    assert one["jails"]["ssh"]["lines"] == 4 and [s["node"] for s in one["sources"]] == ["pbx-b"]
    result = cli("ips", "status", "--json", "--node", "pbx-b")
    assert result.exit_code == 0 and json.loads(result.stdout) == one
    text = cli("ips", "status")
    assert text.exit_code == 0 and "pbx-a" in text.stdout and "pbx-b" in text.stdout
    bad = client.get(f"{API}/ips/status", params={"node": "a/b"}, headers=auth)
    assert bad.status_code == 422 and locs(bad) == [["query", "node"]]
    refused = cli("ips", "status", "--node", "a/b")
    assert refused.exit_code == 2 and "--node" in refused.stderr


# -- found by the OpenAPI fuzz test ---------------------------------------------------


def test_a_preset_that_is_not_a_name_is_a_422(client: TestClient, auth: dict[str, str]) -> None:
    answer = client.patch(f"{API}/settings", headers=auth, json={"ips_preset": []})
    assert answer.status_code == 422 and locs(answer) == [["body", "ips_preset"]]


@pytest.mark.parametrize(("body", "field"), [({"jail": ""}, "jail"), ({"seconds": -5}, "seconds")])
def test_an_import_names_a_bad_jail_or_length(
    client: TestClient, auth: dict[str, str], body: dict[str, Any], field: str
) -> None:
    answer = client.post(f"{API}/bans/import", headers=auth, json={"lines": ["10.0.0.0/8"], **body})
    assert answer.status_code == 422 and locs(answer) == [["body", field]]
    assert client.get(f"{API}/bans", headers=auth).json() == []
