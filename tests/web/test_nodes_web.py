"""``/api/v1/nodes`` and the PBXs page (``/nodes``) on the existing web fixtures."""

from __future__ import annotations

import time

from pbxfw.domain.nodes import Node
from pbxfw.storage.repository import Store
from pbxfw.usecases.nodes import NodeService
from tests.web.conftest import TestClient
from tests.web.test_pages import log_in

API = "/api/v1"


def report(store: Store, name: str, age: float, applied: int | None, error: str = "") -> None:
    now = time.time()
    node = Node(name, "default", now - 60, now - 60, now - age, applied, 7, "0.1.0", 0, error)
    NodeService(store).report(node)


def test_api_lists_nodes_with_the_cli_fields(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    assert client.get(f"{API}/nodes", headers=auth).json() == []
    report(store, "pbx-b", 40, 1)
    report(store, "pbx-a", 1, 1)
    answer = client.get(f"{API}/nodes", headers=auth)
    assert answer.status_code == 200
    nodes = answer.json()
    assert [(n["name"], n["state"]) for n in nodes] == [("pbx-a", "up"), ("pbx-b", "stale")]
    # The same fields, in the same order, as `pbxfw node list --json`.
    expected = NodeService(store).listing().as_json()
    assert [list(n) for n in nodes] == [list(n) for n in expected]
    assert nodes[0]["kernel_bans"] == 7 and nodes[0]["stored_revision"] == 1


def test_api_deletes_a_node_and_answers_404_and_422(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    report(store, "pbx-a", 1, 1)
    assert client.delete(f"{API}/nodes/pbx-a", headers=auth).status_code == 204
    assert client.get(f"{API}/nodes", headers=auth).json() == []
    missing = client.delete(f"{API}/nodes/pbx-a", headers=auth)
    assert missing.status_code == 404 and "no node named 'pbx-a'" in missing.json()["detail"]
    bad = client.delete(f"{API}/nodes/-x", headers=auth)
    assert bad.status_code == 422
    [error] = bad.json()["detail"]
    assert error["loc"] == ["path", "name"] and "starting with a letter" in error["msg"]
    assert client.delete(f"{API}/nodes/pbx-a").status_code == 401


def test_the_pbxs_page_shows_every_node_and_removes_one(client: TestClient, store: Store) -> None:
    csrf = log_in(client)
    empty = client.get("/nodes")
    assert empty.status_code == 200
    assert "No PBX has reported yet" in empty.text and "pbxfw agent" in empty.text
    assert '<a href="/nodes" aria-current="page">PBXs</a>' in empty.text
    report(store, "pbx-up", 1, 1)
    report(store, "pbx-stale", 60, 1)
    report(store, "pbx-drifted", 1, None, error="<script>alert(1)</script>")
    page = client.get("/nodes").text
    for name, badge in (("pbx-up", "ok"), ("pbx-stale", "failing"), ("pbx-drifted", "warn")):
        row = page.split(f'<tr data-node="{name}">')[1].split("</tr>")[0]
        assert f'badge badge-{badge} state">{name.removeprefix("pbx-")}<' in row
        assert "default" in row
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    removed = client.post("/nodes/pbx-stale/delete", data={"csrf_token": csrf})
    assert removed.status_code == 200 and removed.url.path == "/nodes"
    assert "Node “pbx-stale” removed" in removed.text
    assert 'data-node="pbx-stale"' not in removed.text
    again = client.post("/nodes/pbx-stale/delete", data={"csrf_token": csrf})
    assert "no node named" in again.text
    # Without the session's CSRF token nothing is removed.
    refused = client.post("/nodes/pbx-up/delete", data={"csrf_token": "forged"})
    assert refused.status_code == 403
    assert 'data-node="pbx-up"' in client.get("/nodes").text
