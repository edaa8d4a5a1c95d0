"""``/api/v1/feeds`` (issue 17): create, list, read, update request, delete; 401; 422 naming the field."""

from __future__ import annotations

from pbxfw.storage.feeds import FeedStatus
from pbxfw.storage.repository import Store
from pbxfw.usecases.feeds import FeedService
from tests.web.conftest import TestClient

API = "/api/v1"


def test_feeds_are_created_listed_asked_for_and_deleted(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    body = {
        "name": "apiban",
        "url": "https://apiban.org/api/banned",
        "format": "apiban",
        "every": "30m",
        "scope": ["sip", "iax"],
        "headers": ["Authorization: Bearer SECRET"],
    }
    answer = client.post(f"{API}/feeds", headers=auth, json=body)
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert created == {
        "id": created["id"],
        "name": "apiban",
        "url": "https://apiban.org/api/banned",
        "format": "apiban",
        "every": "30m",
        "scope": ["iax", "sip"],
        "headers": ["Authorization: ***"],
        "status": [],
    }
    # What an agent reports shows in the list and on the feed.
    FeedService(store).save_status(
        FeedStatus(node="pbx1", feed="apiban", last_fetch=10.0, entries=3, refused={"too broad": 1})
    )
    listed = client.get(f"{API}/feeds", headers=auth).json()
    assert [f["name"] for f in listed] == ["apiban"]
    status = listed[0]["status"][0]
    assert (status["node"], status["entries"], status["refused"]) == ("pbx1", 3, {"too broad": 1})
    assert client.get(f"{API}/feeds/apiban", headers=auth).json()["status"][0]["node"] == "pbx1"
    asked = client.post(f"{API}/feeds/apiban/update", headers=auth)
    assert asked.status_code == 202
    assert "apiban" in FeedService(store).update_requests()
    assert client.delete(f"{API}/feeds/apiban", headers=auth).status_code == 204
    assert client.get(f"{API}/feeds", headers=auth).json() == []
    assert client.get(f"{API}/feeds/apiban", headers=auth).status_code == 404
    assert client.post(f"{API}/feeds/apiban/update", headers=auth).status_code == 404


def test_bad_feeds_answer_422_naming_the_field_and_store_nothing(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    cases = [
        ({"name": "x y", "url": "https://a/b"}, "name"),
        ({"name": "ok", "url": "ftp://a/b"}, "url"),
        ({"name": "ok", "url": "https://a/b", "every": "1m"}, "every"),
        ({"name": "ok", "url": "https://a/b", "scope": ["nope"]}, "scope"),
        ({"name": "ok", "url": "https://a/b", "headers": ["no colon"]}, "headers[0]"),
        ({"name": "ok", "url": "https://a/b", "format": "xml"}, "format"),
    ]
    for body, field in cases:
        answer = client.post(f"{API}/feeds", headers=auth, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert field in answer.text, (body, answer.text)
    assert FeedService(store).feeds() == []


def test_feeds_need_a_token(client: TestClient) -> None:
    assert client.get(f"{API}/feeds").status_code == 401
    assert client.post(f"{API}/feeds", json={"name": "a", "url": "https://a/"}).status_code == 401
