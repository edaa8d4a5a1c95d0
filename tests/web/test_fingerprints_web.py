"""``/api/v1/fingerprints`` and the Fingerprints page (issue 18): success, 401, 422/404 naming the field."""

from __future__ import annotations

from pbxfw.storage.repository import Store
from pbxfw.usecases.fingerprints import FingerprintService
from tests.web.conftest import TestClient
from tests.web.test_pages import log_in

API = "/api/v1"


def test_api_lists_adds_and_removes(client: TestClient, auth: dict[str, str], store: Store) -> None:
    assert client.get(f"{API}/fingerprints").status_code == 401
    shipped = client.get(f"{API}/fingerprints", headers=auth).json()
    assert {"header": "User-Agent", "pattern": "friendly-scanner", "builtin": True} in shipped
    added = client.post(
        f"{API}/fingerprints", headers=auth, json={"pattern": "a/b dialer", "header": "from"}
    )
    assert added.status_code == 201, added.text
    assert added.json() == {"header": "From", "pattern": "a/b dialer", "builtin": False}
    gone = client.delete(
        f"{API}/fingerprints", headers=auth, params={"pattern": "friendly-SCANNER"}
    )
    assert gone.status_code == 204
    now = [f["pattern"] for f in client.get(f"{API}/fingerprints", headers=auth).json()]
    assert "friendly-scanner" not in now and now[-1] == "a/b dialer"

    before = FingerprintService(store).fingerprints()
    for body, field, code in (
        ({"pattern": ""}, "pattern", 422),
        ({"pattern": "x", "header": "no good"}, "header", 422),
        ({"pattern": "A/B DIALER", "header": "From"}, "pattern", 409),  # listed already
    ):
        answer = client.post(f"{API}/fingerprints", headers=auth, json=body)
        assert answer.status_code == code, (body, answer.text)
        assert field in answer.text
    missing = client.delete(f"{API}/fingerprints", headers=auth, params={"pattern": "nope"})
    assert missing.status_code == 404
    assert FingerprintService(store).fingerprints() == before


def test_page_lists_adds_refuses_and_removes(client: TestClient, store: Store) -> None:
    token = log_in(client)
    page = client.get("/fingerprints")
    assert page.status_code == 200 and "<code>friendly-scanner</code>" in page.text
    assert 'href="/fingerprints"' in page.text  # the nav entry
    answer = client.post("/fingerprints", data={"csrf_token": token, "pattern": "EvilDialer"})
    assert answer.status_code == 200 and "Fingerprint “EvilDialer” added." in answer.text
    refused = client.post(
        "/fingerprints", data={"csrf_token": token, "pattern": "x", "header": "a b"}
    )
    assert refused.status_code == 422 and "Nothing was saved" in refused.text
    answer = client.post(
        "/fingerprints/delete",
        data={"csrf_token": token, "pattern": "sipcli", "header": "User-Agent"},
    )
    assert "Fingerprint “sipcli” removed." in answer.text
    patterns = [f.pattern for f in FingerprintService(store).fingerprints()]
    assert "sipcli" not in patterns and "EvilDialer" in patterns and "x" not in patterns
