"""``/api/v1/sites`` and ``?site=NAME`` on the configuration routes (issue 16),
on SQLite and PostgreSQL: a real app over a real store, the Apply routes over
the real FirewallApplier with a dry-run kernel."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pbxfw.domain.nodes import Node
from pbxfw.kernel.dryrun import DryRunBackend
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from pbxfw.usecases.applier import FirewallApplier
from pbxfw.usecases.firewall import FirewallService
from pbxfw.usecases.nodes import NodeService
from pbxfw.web.app import create_app
from tests.web.conftest import ADMIN, CLIENT, PASSWORD, TestClient

API = "/api/v1"


@pytest.fixture
def backend() -> DryRunBackend:
    return DryRunBackend()


@pytest.fixture
def site_client(store: Store, tmp_path: Path, backend: DryRunBackend) -> Iterator[TestClient]:
    firewall = FirewallService(store, tmp_path / "state", backend=lambda _ns: backend)  # type: ignore[arg-type,return-value]
    app = create_app(
        store,
        applier=FirewallApplier(firewall),
        secret_key=b"k" * 32,
        web_log=tmp_path / "web.log",
    )
    with TestClient(app, client=CLIENT) as client:
        answer = client.post(f"{API}/auth/token", data={"username": ADMIN, "password": PASSWORD})
        client.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        yield client


def _names(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [n["name"] for n in answer.json()]


def test_sites_list_add_remove(site_client: TestClient, store: Store) -> None:
    client = site_client
    assert _names(client.get(f"{API}/sites")) == ["default"]
    made = client.post(f"{API}/sites", json={"name": "branch"})
    assert made.status_code == 201 and made.json()["name"] == "branch"
    assert _names(client.get(f"{API}/sites")) == ["branch", "default"]
    again = client.post(f"{API}/sites", json={"name": "branch"})
    assert again.status_code == 409 and again.json()["detail"][0]["loc"] == ["body", "name"]
    bad = client.post(f"{API}/sites", json={"name": "no/such"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "name"
    assert client.delete(f"{API}/sites/default").status_code == 422
    assert client.delete(f"{API}/sites/ghost").status_code == 404

    now = time.time()
    NodeService(store).report(Node("pbx-b", "branch", now, now, now, None, 0, "t", 0, ""))
    has_nodes = client.delete(f"{API}/sites/branch")
    assert has_nodes.status_code == 422 and "pbx-b" in has_nodes.text
    NodeService(store).remove("pbx-b")
    assert client.delete(f"{API}/sites/branch").status_code == 204
    assert _names(client.get(f"{API}/sites")) == ["default"]


def test_configuration_routes_take_the_site(site_client: TestClient, store: Store) -> None:
    client = site_client
    client.post(f"{API}/sites", json={"name": "branch"})
    b = {"site": "branch"}
    office = {"name": "Office", "subnet": "10.1.0.0/16", "allow": ["ssh"]}
    assert client.post(f"{API}/networks", params=b, json=office).status_code == 201
    # Served (and cached) per site.
    assert _names(client.get(f"{API}/networks")) == ["Internet", "Internet IPv6"]
    assert _names(client.get(f"{API}/networks", params=b)) == [
        "Internet",
        "Internet IPv6",
        "Office",
    ]
    assert client.post(f"{API}/networks", json=office).status_code == 201  # same name in default
    assert _names(client.get(f"{API}/networks")) == ["Internet", "Internet IPv6", "Office"]

    patched = client.patch(f"{API}/settings", params=b, json={"sip_port": 5070})
    assert patched.status_code == 200, patched.text
    assert client.get(f"{API}/settings", params=b).json()["sip_port"] == 5070
    assert client.get(f"{API}/settings").json()["sip_port"] == 5060
    made = client.post(
        f"{API}/services", params=b, json={"key": "prov", "label": "P", "tcp": "8443"}
    )
    assert made.status_code == 201, made.text
    assert "prov" in {s["key"] for s in client.get(f"{API}/services", params=b).json()}
    assert "prov" not in {s["key"] for s in client.get(f"{API}/services").json()}
    branch_office = next(
        n for n in client.get(f"{API}/networks", params=b).json() if n["name"] == "Office"
    )
    # Another site's network is not found by id.
    assert client.get(f"{API}/networks/{branch_office['id']}").status_code == 404
    assert client.get(f"{API}/networks/{branch_office['id']}", params=b).status_code == 200
    assert ConfigService(store).revision() == 2  # init, then default's Office


def test_an_unknown_site_answers_422_naming_site(site_client: TestClient, store: Store) -> None:
    client = site_client
    before = ConfigService(store).export_document()
    for method, path, body in (
        ("GET", "/networks", None),
        ("POST", "/networks", {"name": "X", "subnet": "10.0.0.0/8"}),
        ("GET", "/settings", None),
        ("PATCH", "/settings", {"sip_port": 5070}),
        ("GET", "/services", None),
        ("GET", "/check?address=10.0.0.1&service=ssh", None),
        ("POST", "/apply", {}),
    ):
        sep = "&" if "?" in path else "?"
        answer = client.request(method, f"{API}{path}{sep}site=ghost", json=body)
        assert answer.status_code == 422, (method, path, answer.text)
        [error] = answer.json()["detail"]
        assert error["loc"][-1] == "site" and "ghost" in error["msg"], answer.text
    bad = client.get(f"{API}/networks?site=-x")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "site"
    assert ConfigService(store).export_document() == before


def test_apply_per_site(site_client: TestClient, store: Store, backend: DryRunBackend) -> None:
    client = site_client
    client.post(f"{API}/sites", json={"name": "branch"})
    b = {"site": "branch"}
    client.patch(f"{API}/settings", params=b, json={"firewall_enabled": True})
    admin = {"name": "Admins", "subnet": "198.51.100.0/24", "allow": ["web"]}
    assert client.post(f"{API}/networks", params=b, json=admin).status_code == 201
    first = client.post(f"{API}/apply", params=b, json={})
    assert first.status_code == 200 and first.json()["status"] == "applied", first.text
    office = {"name": "Office", "subnet": "10.1.0.0/16", "allow": ["ssh"]}
    assert client.post(f"{API}/networks", params=b, json=office).status_code == 201
    preview = client.get(f"{API}/apply", params=b)
    assert preview.status_code == 200 and "Office" in preview.json()["preview"]
    assert "Office" not in client.get(f"{API}/apply").json()["preview"]
    applied = client.post(f"{API}/apply", params=b, json={})
    assert applied.status_code == 200 and applied.json()["status"] == "applied", applied.text
    assert "10.1.0.0/16" in (backend.table or "")
    branch = FirewallService(store, "/nonexistent", site="branch")
    assert branch.applied_revision() == ConfigService(store, site="branch").revision()
    assert FirewallService(store, "/nonexistent").applied_revision() is None
