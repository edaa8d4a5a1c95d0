"""``/api/v1/history`` (issue 19), on SQLite and PostgreSQL.

Changes made through REST are recorded with the administrator the token
names, via ``rest``, from the client's address; the list, one entry with its
diff, and restore; bad input answers 422/404 and changes nothing; without a
token, 401.
"""

from __future__ import annotations

from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from pbxfw.usecases.sites import SiteService
from tests.web.conftest import ADMIN, CLIENT, TestClient

API = "/api/v1"


def test_rest_changes_are_recorded_with_the_admin_and_the_client(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    created = client.post(
        f"{API}/networks",
        json={"name": "Office", "subnet": "10.1.0.0/16", "allow": ["ssh"]},
        headers=auth,
    )
    assert created.status_code == 201, created.text
    network = created.json()["id"]
    assert client.patch(
        f"{API}/networks/{network}", json={"block": ["ssh"]}, headers=auth
    ).is_success
    assert client.patch(f"{API}/settings", json={"ips_maxretry": 3}, headers=auth).is_success
    assert client.post(f"{API}/bans", json={"address": "203.0.113.5"}, headers=auth).is_success
    listed = client.get(f"{API}/history", params={"limit": 4}, headers=auth)
    assert listed.status_code == 200, listed.text
    entries = listed.json()
    assert [(e["kind"], e["summary"]) for e in entries] == [
        ("ban", "ban 203.0.113.5 (manual, 1d)"),
        ("config", "setting ips_maxretry: 10 → 3"),
        ("config", "network Office: ssh allow → block"),
        ("config", "network Office added (10.1.0.0/16)"),
    ]
    assert {(e["actor"], e["via"], e["client"]) for e in entries} == {(ADMIN, "rest", CLIENT[0])}

    shown = client.get(f"{API}/history/{entries[2]['rev']}", headers=auth).json()
    assert shown["changes"] == ["network Office: ssh allow → block"]
    assert shown["against"] == entries[3]["rev"]
    assert shown["document"]["settings"]["ips_maxretry"] == 10

    restored = client.post(f"{API}/history/{entries[3]['rev']}/restore", headers=auth)
    assert restored.status_code == 200, restored.text
    assert restored.json()["changed"] is True
    assert ConfigService(store).network("Office").services["ssh"].value == "allow"
    assert ConfigService(store).settings().ips_maxretry == 10
    newest = client.get(f"{API}/history", params={"limit": 1}, headers=auth).json()[0]
    assert newest["summary"].startswith(f"restore of revision {entries[3]['rev']}: ")
    assert (newest["actor"], newest["via"]) == (ADMIN, "rest")


def test_bad_requests_are_refused_and_change_nothing(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    client.post(f"{API}/bans", json={"address": "203.0.113.5"}, headers=auth)
    before = ConfigService(store).history()
    ban = before[0]
    for path, expected in (
        (f"{API}/history?limit=0", 422),
        (f"{API}/history?limit=1001", 422),
        (f"{API}/history?limit=x", 422),
        (f"{API}/history?before=0", 422),
        (f"{API}/history?before={2**70}", 422),
        (f"{API}/history/abc", 422),
        (f"{API}/history/999999", 404),
        (f"{API}/history/{2**70}", 404),
    ):
        answer = client.get(path, headers=auth)
        assert answer.status_code == expected, (path, answer.text)
    refused = client.post(f"{API}/history/{ban.rev}/restore", headers=auth)
    assert refused.status_code == 422
    assert "only a configuration revision" in refused.text
    assert client.post(f"{API}/history/999999/restore", headers=auth).status_code == 404
    assert client.get(f"{API}/history").status_code == 401
    assert client.post(f"{API}/history/1/restore").status_code == 401
    assert ConfigService(store).history() == before


def test_the_history_is_the_sites(client: TestClient, auth: dict[str, str], store: Store) -> None:
    SiteService(store).add("branch")
    made = client.post(
        f"{API}/networks?site=branch",
        json={"name": "Shop", "subnet": "10.5.0.0/16"},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    branch = client.get(f"{API}/history?site=branch", headers=auth).json()
    assert branch[0]["summary"] == "network Shop added (10.5.0.0/16)"
    assert {e["site"] for e in branch} == {"branch"}
    default = client.get(f"{API}/history", headers=auth).json()
    assert "Shop" not in str(default)
    assert client.get(f"{API}/history/{branch[0]['rev']}", headers=auth).status_code == 404
    assert client.get(f"{API}/history?site=ghost", headers=auth).status_code == 422
