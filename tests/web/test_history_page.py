"""The History page without a browser: what the page records and shows, the
diff of a revision, and restore (CSRF-checked, then the Apply page)."""

from __future__ import annotations

from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService
from tests.web.conftest import ADMIN, CLIENT, TestClient
from tests.web.test_pages import csrf_of, log_in


def test_page_changes_are_listed_shown_and_restored(client: TestClient, store: Store) -> None:
    token = log_in(client)
    start = ConfigService(store).history(1)[0]
    answer = client.post(
        "/networks/new",
        data={"csrf_token": token, "name": "LAN", "address": "192.168.5.0", "prefix": "24"},
    )
    assert answer.status_code == 200, answer.text
    client.post("/bans/add", data={"csrf_token": token, "address": "203.0.113.5"})

    page = client.get("/history")
    assert page.status_code == 200
    assert "network LAN added (192.168.5.0/24)" in page.text
    assert "ban 203.0.113.5 (manual, 1d)" in page.text
    assert f'<td data-label="Who">{ADMIN}</td>' in page.text
    assert f'<td data-label="From">{CLIENT[0]}</td>' in page.text
    assert '<td data-label="Through">web</td>' in page.text
    assert 'aria-current="page">History' in page.text

    newest = ConfigService(store).history(2)[1]
    assert newest.summary == "network LAN added (192.168.5.0/24)"
    shown = client.get(f"/history/{newest.rev}")
    assert shown.status_code == 200
    assert "<li>network LAN added (192.168.5.0/24)</li>" in shown.text
    assert f'Changes since revision <a href="/history/{start.rev}">{start.rev}</a>' in shown.text

    # Restore: refused without the session's CSRF token, nothing changed.
    forged = client.post(f"/history/{start.rev}/restore", data={"csrf_token": "x"})
    assert forged.status_code == 403
    assert [n.name for n in ConfigService(store).networks()].count("LAN") == 1
    page = client.get(f"/history/{start.rev}")
    restored = client.post(f"/history/{start.rev}/restore", data={"csrf_token": csrf_of(page.text)})
    assert restored.status_code == 200 and restored.url.path == "/apply"
    assert f"Revision {start.rev} is the stored configuration again" in restored.text
    assert "LAN" not in [n.name for n in ConfigService(store).networks()]
    newest = ConfigService(store).history(1)[0]
    assert (newest.actor, newest.via, newest.client) == (ADMIN, "web", CLIENT[0])


def test_the_page_needs_a_login_and_handles_bad_numbers(client: TestClient) -> None:
    assert client.get("/history", follow_redirects=False).status_code in (302, 303)
    log_in(client)
    missing = client.get("/history/999999")
    assert missing.url.path == "/history" and "no history entry 999999" in missing.text
    assert client.get("/history?before=0").status_code == 200
    assert client.get(f"/history?before={2**70}").status_code == 200
