"""The Feeds page (issue 17) without a browser: list with each PBX's status, add,
update now, remove, refusals, CSRF, secrets never shown, and the site selector."""

from __future__ import annotations

from pbxfw.storage.feeds import FeedStatus
from pbxfw.storage.repository import Store
from pbxfw.usecases.feeds import FeedService
from pbxfw.usecases.sites import SiteService
from tests.web.conftest import TestClient
from tests.web.test_pages import log_in

APIBAN = {
    "name": "apiban",
    "url": "https://apiban.org/api/banned",
    "format": "apiban",
    "every": "30m",
    "scope": "sip, iax",
    "headers": "Authorization: Bearer SECRET-KEY-123\n",
}


def test_feeds_are_added_shown_with_their_status_updated_and_removed(
    client: TestClient, store: Store
) -> None:
    token = log_in(client)
    page = client.get("/feeds")
    assert page.status_code == 200
    assert 'href="/feeds" aria-current="page"' in page.text  # in the navigation
    assert "No feeds" in page.text
    answer = client.post("/feeds", data={"csrf_token": token, **APIBAN})
    assert answer.status_code == 200 and "Feed “apiban” added" in answer.text
    (feed,) = FeedService(store).feeds()
    assert (feed.format, feed.every, feed.scope) == ("apiban", 1800, ("iax", "sip"))
    assert feed.headers == (("Authorization", "Bearer SECRET-KEY-123"),)
    assert "not fetched yet" in answer.text
    assert "SECRET-KEY-123" not in answer.text  # the header's name only
    assert "headers: Authorization (values hidden)" in answer.text
    assert "feed:apiban" in answer.text
    # What two PBXs' agents reported: entries, refused by reason, errors, a held-back list.
    service = FeedService(store)
    service.save_status(
        FeedStatus(
            node="pbx1",
            feed="apiban",
            last_fetch=1_796_428_800.0,
            next_fetch=1_796_430_600.0,
            entries=1234,
            refused={"too broad": 2, "malformed": 1},
        )
    )
    service.save_status(
        FeedStatus(node="pbx2", feed="apiban", error="HTTP 500 from apiban.org", held_back=True)
    )
    text = client.get("/feeds").text
    assert "pbx1: 2026-12-05 00:00 UTC" in text  # last fetch
    assert "pbx1: 1,234" in text  # entries
    assert 'pbx1: 3 <span class="hint">(malformed 1, too broad 2)</span>' in text
    assert "pbx1: 2026-12-05 00:30 UTC" in text  # next fetch
    assert 'pbx2: <span class="field-error">HTTP 500 from apiban.org</span>' in text
    assert "Feed “apiban” on pbx2: the new list shrank by more than 90 %" in text
    # Update now: one feed, then all.
    answer = client.post(f"/feeds/{feed.id}/update", data={"csrf_token": token})
    assert answer.status_code == 200 and "will be fetched at the next look" in answer.text
    assert "apiban" in FeedService(store).update_requests()
    client.post("/feeds", data={"csrf_token": token, "name": "drop", "url": "https://x.test/d"})
    answer = client.post("/feeds/update", data={"csrf_token": token})
    assert "2 feeds will be fetched" in answer.text
    assert set(FeedService(store).update_requests()) == {"apiban", "drop"}
    # Remove.
    answer = client.post(f"/feeds/{feed.id}/delete", data={"csrf_token": token})
    assert "Feed “apiban” removed" in answer.text
    assert [f.name for f in FeedService(store).feeds()] == ["drop"]
    answer = client.post(f"/feeds/{feed.id}/delete", data={"csrf_token": token})
    assert answer.status_code == 200 and "no feed" in answer.text  # already gone: said, not a 500


def test_refusals_are_422_next_to_the_field_and_store_nothing(
    client: TestClient, store: Store
) -> None:
    token = log_in(client)
    cases = [
        ({"name": "Bad Name", "url": "https://a.test/l"}, "new_name-error"),
        ({"name": "ok", "url": "ftp://a.test/l"}, "new_url-error"),
        ({"name": "ok", "url": "https://a.test/l", "format": "xml"}, "new_format-error"),
        ({"name": "ok", "url": "https://a.test/l", "every": "1s"}, "new_every-error"),
        ({"name": "ok", "url": "https://a.test/l", "scope": "nosuch"}, "new_scope-error"),
        ({"name": "ok", "url": "https://a.test/l", "headers": "no colon"}, "new_headers-error"),
    ]
    for form, marked in cases:
        answer = client.post("/feeds", data={"csrf_token": token, **form})
        assert answer.status_code == 422, (form, answer.text)
        assert f'id="{marked}"' in answer.text, form
        assert "Nothing was saved" in answer.text
        assert FeedService(store).feeds() == []
    # What was typed stays in the form.
    answer = client.post(
        "/feeds", data={"csrf_token": token, "name": "Bad Name", "url": "https://k"}
    )
    assert 'value="https://k"' in answer.text
    # A name taken is refused on the name.
    client.post("/feeds", data={"csrf_token": token, "name": "drop", "url": "https://x.test/d"})
    again = client.post("/feeds", data={"csrf_token": token, "name": "drop", "url": "https://y"})
    assert again.status_code == 422 and 'id="new_name-error"' in again.text
    # Without the session's CSRF token nothing happens.
    (feed,) = FeedService(store).feeds()
    forged = client.post(f"/feeds/{feed.id}/delete", data={"csrf_token": "nope"})
    assert forged.status_code == 403
    forged = client.post("/feeds", data={"csrf_token": "nope", "name": "x", "url": "https://x"})
    assert forged.status_code == 403
    assert [f.name for f in FeedService(store).feeds()] == ["drop"]


def test_the_page_works_on_the_chosen_site(client: TestClient, store: Store) -> None:
    SiteService(store).add("hq")
    token = log_in(client)
    answer = client.post(
        "/feeds",
        data={"csrf_token": token, "site": "hq", "name": "hqlist", "url": "https://hq.test/l"},
    )
    assert answer.status_code == 200 and "Feed “hqlist” added" in answer.text
    assert [f.name for f in FeedService(store, site="hq").feeds()] == ["hqlist"]
    assert FeedService(store).feeds() == []  # the site default has none
    assert "hqlist" in client.get("/feeds", params={"site": "hq"}).text
    assert "hqlist" not in client.get("/feeds", params={"site": "default"}).text
    assert client.get("/feeds", params={"site": "nosuch"}).status_code == 404
