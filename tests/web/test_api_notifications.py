"""``/api/v1/notifications`` and the Notifications page through the real app
(issue 19): secrets masked in every answer, 422 naming the field, the test
route against a real HTTP receiver."""

from __future__ import annotations

import re

from tests.notify_servers import Receiver, receiver
from tests.web.conftest import ADMIN, PASSWORD, TestClient

__all__ = ["receiver"]  # the fixture, used by name

SECRET = "abcdEFGHijklMNOPqrst1234"
SLACK = f"https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/{SECRET}"


def test_rest_channels(client: TestClient, auth: dict[str, str], receiver: Receiver) -> None:
    assert client.get("/api/v1/notifications").status_code == 401
    made = client.post(
        "/api/v1/notifications",
        json={"name": "team", "url": SLACK, "template": "slack"},
        headers=auth,
    )
    assert made.status_code == 201, made.text
    assert SECRET not in made.text and made.json()["url"].endswith("/****")
    mail = client.post(
        "/api/v1/notifications",
        json={"name": "noc", "url": "smtps://pbx:hunter2@mail.example.com?to=noc@example.com"},
        headers=auth,
    )
    assert mail.status_code == 201 and mail.json()["template"] == "email"
    listed = client.get("/api/v1/notifications", headers=auth)
    assert listed.status_code == 200
    assert SECRET not in listed.text and "hunter2" not in listed.text
    assert [c["name"] for c in listed.json()] == ["team", "noc"]

    bad = client.post(
        "/api/v1/notifications", json={"name": "x", "url": "ftp://example.com/"}, headers=auth
    )
    assert bad.status_code == 422 and "url" in bad.text
    taken = client.post(
        "/api/v1/notifications", json={"name": "TEAM", "url": "https://e.com/"}, headers=auth
    )
    assert taken.status_code == 409
    assert len(client.get("/api/v1/notifications", headers=auth).json()) == 2

    hook = client.post(
        "/api/v1/notifications", json={"name": "hook", "url": receiver.url + "/x"}, headers=auth
    )
    assert hook.status_code == 201
    tested = client.post("/api/v1/notifications/hook/test", headers=auth)
    assert tested.status_code == 200 and tested.json() == {"sent": True}
    assert receiver.wait(1)[0]["event"] == "test"
    receiver.status = 500
    failed = client.post("/api/v1/notifications/hook/test", headers=auth)
    assert failed.status_code == 502 and failed.json()["detail"].startswith("HTTP 500")
    assert client.post("/api/v1/notifications/nope/test", headers=auth).status_code == 404
    assert client.delete("/api/v1/notifications/hook", headers=auth).status_code == 204
    assert client.delete("/api/v1/notifications/hook", headers=auth).status_code == 404


def _login(client: TestClient) -> str:
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    client.post(
        "/login",
        data={"username": ADMIN, "password": PASSWORD, "csrf_token": token.group(1)},
    )
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/notifications").text)
    assert found
    return found.group(1)


def test_the_page_adds_tests_and_removes(client: TestClient, receiver: Receiver) -> None:
    csrf = _login(client)
    page = client.get("/notifications")
    assert page.status_code == 200 and 'href="/notifications"' in page.text
    refused = client.post(
        "/notifications", data={"name": "x", "url": "ftp://e", "csrf_token": csrf}
    )
    assert refused.status_code == 422 and "a webhook is an http://" in refused.text
    # A target without SCHEME:// is not shown back at all: where its
    # password sits cannot be told ("admin:secret@host" parses as scheme
    # "admin"), so it is not masked but left out.
    for typed in ("admin:s3cretpw@mail.example.com:587?to=a@b.c", "smtp//admin:s3cretpw@m.e"):
        unread = client.post("/notifications", data={"name": "m", "url": typed, "csrf_token": csrf})
        assert unread.status_code == 422 and "s3cretpw" not in unread.text
        assert "Type the target again" in unread.text
    # The form's "email" with a webhook's URL is refused beside the template.
    email_hook = client.post(
        "/notifications",
        data={"name": "team", "url": SLACK, "template": "email", "csrf_token": csrf},
    )
    assert email_hook.status_code == 422 and "the email template is for an smtp://" in (
        email_hook.text
    )
    added = client.post(
        "/notifications",
        data={"name": "team", "url": SLACK, "template": "slack", "csrf_token": csrf},
    )
    assert added.status_code == 200 and "Channel “team” added." in added.text
    assert SECRET not in added.text and "/B0BBBBBBB/****" in added.text
    client.post(
        "/notifications",
        data={"name": "hook", "url": receiver.url + "/p", "csrf_token": csrf},
    )
    tested = client.post("/notifications/hook/test", data={"csrf_token": csrf})
    assert "Test message sent to “hook”." in tested.text
    assert receiver.wait(1)[0]["event"] == "test"
    removed = client.post("/notifications/team/delete", data={"csrf_token": csrf})
    assert "Channel “team” removed." in removed.text and "/B0BBBBBBB/" not in removed.text
