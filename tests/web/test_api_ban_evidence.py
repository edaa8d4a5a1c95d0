"""A ban's evidence on the REST API and the web page (issue 19). Both engines
(``tests/web/test_api``): ``GET /api/v1/bans/{address}`` gives each ban of
the address with its origin, who made it and the lines; 404 names the
address; 401 without a token; the page /bans/{address} shows the same."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from pbxfw.domain.bans import Ban
from pbxfw.domain.evidence import BanEvidence, EvidenceLine
from pbxfw.ips.events import BanDecision
from pbxfw.storage.repository import Store
from pbxfw.usecases.bans import BanService
from tests.web.conftest import ADMIN
from tests.web.test_pages import log_in

LINE = "[2026-12-05 03:00:01] NOTICE[1] res_pjsip: failed for '198.51.100.40:5060' <b>"


def detected(address: str) -> Ban:
    now = datetime.now(UTC)
    decision = BanDecision(
        host=ipaddress.ip_address(address),
        jail="asterisk",
        scope=frozenset({"sip", "iax", "ajam"}),
        time=now,
        seconds=600,
        failures=2,
        first_failure=now,
        reason="2 asterisk failures within 3600 s (offence 1: 600 s)",
    )
    lines = tuple(
        EvidenceLine("/var/log/asterisk/messages", n, LINE, now.timestamp(), "InvalidPassword")
        for n in (41, 42)
    )
    evidence = BanEvidence("asterisk", 2, 3600, lines)
    return Ban.from_decision(decision, now.timestamp(), "pbx-a", "default", evidence)


def test_rest_shows_the_lines_the_rule_and_who(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    BanService(store).record([detected("198.51.100.40")])
    answer = client.get("/api/v1/bans/198.51.100.40", headers=auth)
    assert answer.status_code == 200, answer.text
    [ban] = answer.json()
    assert (ban["origin"], ban["who"], ban["active"]) == ("jail:asterisk", None, True)
    assert ban["evidence"]["rule"] == {"jail": "asterisk", "maxretry": 2, "findtime": 3600}
    assert [(x["file"], x["line"], x["text"]) for x in ban["evidence"]["lines"]] == [
        ("/var/log/asterisk/messages", 41, LINE),
        ("/var/log/asterisk/messages", 42, LINE),
    ]

    made = client.post("/api/v1/bans", json={"address": "203.0.113.0/24"}, headers=auth)
    assert made.status_code == 201, made.text
    [manual] = client.get("/api/v1/bans/203.0.113.0%2F24", headers=auth).json()
    assert (manual["origin"], manual["who"], manual["evidence"]) == (
        "manual",
        f"rest:{ADMIN}",
        None,
    )


def test_rest_answers_404_naming_the_address_and_401_without_a_token(
    client: TestClient, auth: dict[str, str]
) -> None:
    missing = client.get("/api/v1/bans/198.51.100.99", headers=auth)
    assert missing.status_code == 404
    assert "198.51.100.99" in missing.text
    bad = client.get("/api/v1/bans/nonsense", headers=auth)
    assert bad.status_code == 422 and "address" in bad.text
    assert client.get("/api/v1/bans/198.51.100.99").status_code == 401


def test_the_page_shows_the_lines_escaped_and_a_web_ban_says_who(
    client: TestClient, store: Store
) -> None:
    BanService(store).record([detected("198.51.100.40")])
    token = log_in(client)
    listing = client.get("/bans").text
    assert 'href="/bans/198.51.100.40"' in listing
    page = client.get("/bans/198.51.100.40")
    assert page.status_code == 200
    assert "/var/log/asterisk/messages:41" in page.text
    assert "&lt;b&gt;" in page.text and "<b>'" not in page.text  # the attacker's text, escaped
    assert "2 failures within 1 h" in page.text
    assert client.get("/bans/198.51.100.99").status_code == 404
    client.post("/bans/add", data={"csrf_token": token, "address": "203.0.113.99"})
    mine = client.get("/bans/203.0.113.99").text
    assert f"web:{ADMIN}" in mine and "manual" in mine
