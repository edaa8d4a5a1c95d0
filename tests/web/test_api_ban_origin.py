"""A ban's origin on the REST API and the Bans page (issue 16, docs/fleet-bans.md).

Both engines (``tests/web/test_api``): ``GET /api/v1/bans`` gives ``origin``,
``node`` and ``site``; a ban made through REST is ``manual`` without a node;
the Bans page shows the origin and the node that detected a ban.
"""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from pbxfw.domain.bans import Ban
from pbxfw.ips.events import BanDecision
from pbxfw.storage.repository import Store
from pbxfw.usecases.bans import BanService
from tests.web.test_pages import log_in


def detected(address: str) -> Ban:
    now = datetime.now(UTC)
    decision = BanDecision(
        host=ipaddress.ip_address(address),
        jail="ssh",
        scope=frozenset({"ssh"}),
        time=now,
        seconds=600,
        failures=5,
        first_failure=now,
        reason="5 failed logins",
        offence=1,
    )
    return Ban.from_decision(decision, now.timestamp(), "pbx-a", "default")


def test_rest_and_the_page_show_each_bans_origin(
    client: TestClient, auth: dict[str, str], store: Store
) -> None:
    BanService(store).record([detected("198.51.100.40")])
    made = client.post("/api/v1/bans", json={"address": "203.0.113.40"}, headers=auth)
    assert made.status_code in (200, 201), made.text
    assert (made.json()["origin"], made.json()["node"]) == ("manual", None)
    listed = {b["address"]: b for b in client.get("/api/v1/bans", headers=auth).json()}
    assert (listed["198.51.100.40"]["origin"], listed["198.51.100.40"]["node"]) == (
        "jail:ssh",
        "pbx-a",
    )
    assert listed["198.51.100.40"]["site"] == "default"
    assert (listed["203.0.113.40"]["origin"], listed["203.0.113.40"]["site"]) == ("manual", None)

    log_in(client)
    page = client.get("/bans").text
    assert "jail:ssh" in page and "at pbx-a" in page and "manual" in page
