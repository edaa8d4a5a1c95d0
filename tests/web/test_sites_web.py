"""The page's site selector (docs/web.md, "Sites") over plain HTTP.

One site: the page is as it always was (no selector, no hidden field, no
cookie). Two sites: the header offers them, the browser keeps its choice in
the cookie ``pbxfw_site``, every configuration page works on it, a form
works on the site it was shown for, and an unknown site is a 404 that
changes nothing. The PBXs page shows each node's site and filters by site.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI

from pbxfw.domain.nodes import Node
from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.nodes import NodeService
from pbxfw.usecases.sites import SiteService
from pbxfw.web.app import create_app
from tests.web.conftest import ADMIN, CLIENT, PASSWORD, TestClient
from tests.web.fakes import FakeApplier
from tests.web.test_pages import csrf_of, log_in

COOKIE = "pbxfw_site"


def hq(store: Store) -> ConfigService:
    """The site ``hq``, made as `pbxfw site add hq` makes it, with one network of its own."""
    SiteService(store).add("hq")
    config = ConfigService(store, site="hq")
    config.add_network(NetworkChange(name="HQ office", subnet="10.1.0.0/16", allow=["ssh"]))
    return config


@pytest.fixture
def appliers() -> dict[str, FakeApplier]:
    return {
        "default": FakeApplier(preview="# default's rules"),
        "hq": FakeApplier(preview="# hq's rules"),
    }


@pytest.fixture
def app(store: Store, appliers: dict[str, FakeApplier], web_log: Path) -> FastAPI:
    return create_app(
        store,
        applier=appliers["default"],
        applier_for=appliers.get,
        secret_key=b"k" * 32,
        web_log=web_log,
    )


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, client=CLIENT) as client:
        yield client


def selector(page: str) -> list[tuple[str, bool]]:
    """The header's site options: (name, selected)."""
    match = re.search(r'<select id="site-choice" name="site"[^>]*>(.*?)</select>', page, re.S)
    assert match is not None, "no site selector"
    options = re.findall(r'<option value="([^"]*)"( selected)?>', match[1])
    return [(name, selected == " selected") for name, selected in options]


def test_one_site_looks_as_it_always_did(client: TestClient) -> None:
    log_in(client)
    for path in (
        "/firewall",
        "/networks/new",
        "/services",
        "/ips",
        "/check",
        "/apply",
        "/bans",
        "/nodes",
    ):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert "site-choice" not in answer.text and 'name="site"' not in answer.text, path
        assert COOKIE not in answer.headers.get("set-cookie", ""), path


def test_the_selector_switches_every_configuration_page(
    client: TestClient, store: Store, appliers: dict[str, FakeApplier]
) -> None:
    hq(store)
    log_in(client)
    page = client.get("/firewall")
    assert selector(page.text) == [("default", True), ("hq", False)]
    assert "HQ office" not in page.text
    # Choosing hq (the selector's GET) shows hq's networks and keeps the choice.
    chosen = client.get("/firewall", params={"site": "hq"})
    assert "HQ office" in chosen.text and selector(chosen.text) == [
        ("default", False),
        ("hq", True),
    ]
    assert client.cookies.get(COOKIE) == "hq"
    assert "HQ office" in client.get("/firewall").text
    # Every form carries its site.
    assert '<input type="hidden" name="site" value="hq">' in client.get("/networks/new").text
    # The check page decides with hq's networks (hq's firewall switched on).
    ConfigService(store, site="hq").update_settings({"firewall_enabled": True})
    check = client.get("/check", params={"address": "10.1.2.3", "service": "ssh"})
    assert "HQ office" in check.text
    # The apply page previews and applies hq through hq's applier.
    apply_page = client.get("/apply").text
    assert "hq&#39;s rules" in apply_page and "default&#39;s rules" not in apply_page
    csrf = csrf_of(apply_page)
    client.post("/apply", data={"csrf_token": csrf, "site": "hq"})
    assert [c[0] for c in appliers["hq"].calls] == ["apply"] and appliers["default"].calls == []
    # Settings saved on a page of hq change hq's settings only.
    client.post(
        "/firewall/switches", data={"csrf_token": csrf, "site": "hq", "firewall_enabled": "on"}
    )
    # (the form sends a switch that is off by leaving it out: ips_enabled)
    assert not ConfigService(store, site="hq").settings().ips_enabled
    assert ConfigService(store).settings().ips_enabled
    # Back to default: the selector on a network's page leads to the firewall page.
    page = client.get("/networks/new")
    assert 'class="site-choice" method="get" action="/firewall"' in page.text
    back = client.get("/firewall", params={"site": "default"})
    assert "HQ office" not in back.text and client.cookies.get(COOKIE) == "default"


def test_a_form_works_on_the_site_it_was_shown_for(client: TestClient, store: Store) -> None:
    hq(store)
    log_in(client)
    form = client.get("/networks/new", params={"site": "hq"}).text
    # Another tab of the same browser switches to default meanwhile.
    client.get("/firewall", params={"site": "default"})
    answer = client.post(
        "/networks/new",
        data={
            "csrf_token": csrf_of(form),
            "site": "hq",
            "name": "Lab",
            "address": "10.9.0.0",
            "prefix": "24",
        },
    )
    assert answer.status_code == 200 and "Network “Lab” (10.9.0.0/24) added." in answer.text
    assert "Lab" in [n.name for n in ConfigService(store, site="hq").networks()]
    assert "Lab" not in [n.name for n in ConfigService(store).networks()]
    # The page after it shows where it went, and the browser now keeps hq.
    assert client.cookies.get(COOKIE) == "hq" and "HQ office" in answer.text


def test_an_unknown_site_is_a_404_and_changes_nothing(client: TestClient, store: Store) -> None:
    hq(store)
    # Nobody learns which sites exist without logging in: the login page, as always.
    for name in ("hq", "nowhere"):
        anonymous = client.get("/firewall", params={"site": name}, follow_redirects=False)
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")
    csrf = log_in(client)
    missing = client.get("/firewall", params={"site": "nowhere"})
    assert missing.status_code == 404 and "no site named “nowhere”" in missing.text
    before = ConfigService(store).networks()
    posted = client.post(
        "/networks/new",
        data={
            "csrf_token": csrf,
            "site": "gone",
            "name": "X",
            "address": "10.8.0.0",
            "prefix": "24",
        },
    )
    assert posted.status_code == 404 and "nothing was changed" in posted.text
    assert ConfigService(store).networks() == before
    # A cookie naming a site removed since falls back to default.
    client.cookies.set(COOKIE, "removed")
    page = client.get("/firewall")
    assert page.status_code == 200 and selector(page.text)[0] == ("default", True)


def report(store: Store, name: str, site: str) -> None:
    now = time.time()
    NodeService(store).report(
        Node(name, site, now - 60, now - 60, now - 1, None, 0, "0.1.0", 0, "")
    )


def test_the_pbxs_page_shows_and_filters_by_site(client: TestClient, store: Store) -> None:
    hq(store)
    report(store, "pbx-hq-1", "hq")
    report(store, "pbx-hq-2", "hq")
    report(store, "pbx-main", "default")
    log_in(client)
    page = client.get("/nodes").text
    for name, site in (("pbx-hq-1", "hq"), ("pbx-hq-2", "hq"), ("pbx-main", "default")):
        row = page.split(f'<tr data-node="{name}">')[1].split("</tr>")[0]
        assert f'<td data-label="Site">{site}</td>' in row
    assert '<select id="filter" name="filter">' in page
    only = client.get("/nodes", params={"filter": "hq"}).text
    assert 'data-node="pbx-hq-1"' in only and 'data-node="pbx-hq-2"' in only
    assert 'data-node="pbx-main"' not in only
    assert '<option value="hq" selected>site hq</option>' in only
    # The filter is not the site the configuration pages work on.
    assert client.cookies.get(COOKIE) is None
    none = client.get("/nodes", params={"filter": "branch"}).text
    assert "No PBX of site branch has reported" in none


def test_the_server_starts_on_its_own_site_and_applies_only_that(
    store: Store, web_log: Path
) -> None:
    """As `pbxfw --site hq serve` on a PBX of hq: a browser starts on hq, and
    the Apply page of another site says where to apply it instead."""
    hq(store)
    own = FakeApplier(preview="# hq's rules")
    app = create_app(
        store.at_site("hq"),
        applier=own,
        applier_for=lambda site: own if site == "hq" else None,
        secret_key=b"k" * 32,
        web_log=web_log,
    )
    with TestClient(app, client=CLIENT) as client:
        log_in(client)
        page = client.get("/firewall")
        assert "HQ office" in page.text and selector(page.text) == [
            ("default", False),
            ("hq", True),
        ]
        assert client.cookies.get(COOKIE) is None
        assert "hq&#39;s rules" in client.get("/apply").text
        other = client.get("/apply", params={"site": "default"}).text
        assert "This server does not apply the site <strong>default</strong>" in other
        assert "pbxfw apply --site default" in other
        csrf = csrf_of(other)
        refused = client.post("/apply", data={"csrf_token": csrf, "site": "default"})
        assert "Applying is not available on this server." in refused.text
        assert own.calls == []
        # The REST API applies the same way (?site=NAME).
        token = client.post("/api/v1/auth/token", data={"username": ADMIN, "password": PASSWORD})
        auth = {"Authorization": f"Bearer {token.json()['access_token']}"}
        api = client.post("/api/v1/apply", params={"site": "default"}, json={}, headers=auth)
        assert api.status_code == 503 and "applies the site 'hq' only" in api.json()["detail"]
        assert own.calls == []
        done = client.post("/api/v1/apply", params={"site": "hq"}, json={}, headers=auth)
        assert done.status_code == 200 and [c[0] for c in own.calls] == ["apply"]
        # Without ?site= the REST API works on the server's own site, as the page does.
        names = [n["name"] for n in client.get("/api/v1/networks", headers=auth).json()]
        assert "HQ office" in names
        again = client.post("/api/v1/apply", json={}, headers=auth)
        assert again.status_code == 200 and [c[0] for c in own.calls] == ["apply", "apply"]


def test_services_ips_and_never_block_work_on_the_chosen_site(
    client: TestClient, store: Store
) -> None:
    hq(store)
    log_in(client)
    csrf = csrf_of(client.get("/services", params={"site": "hq"}).text)
    added = client.post(
        "/services/custom",
        data={
            "csrf_token": csrf,
            "site": "hq",
            "key": "prov",
            "label": "Provisioning",
            "tcp": "8090",
        },
    )
    assert added.status_code == 200 and "Service “Provisioning” added" in added.text
    assert "prov" in [s.key for s in ConfigService(store, site="hq").services()]
    assert "prov" not in [s.key for s in ConfigService(store).services()]
    # The IPS page's form saves hq's settings (the whitelist here), as shown.
    ips = client.get("/ips").text
    form = {k: v for k, v in re.findall(r'name="([a-z_]+)"[^>]*value="([^"]*)"', ips)}
    form |= {"csrf_token": csrf, "site": "hq", "ips_enabled": "on", "ips_preset": "custom"}
    form["ips_whitelist"] = "192.0.2.10"
    saved = client.post("/ips", data=form)
    assert saved.status_code == 200 and "Intrusion prevention settings saved." in saved.text
    assert ConfigService(store, site="hq").settings().as_text("ips_whitelist") == "192.0.2.10/32"
    assert ConfigService(store).settings().as_text("ips_whitelist") == ""
    assert ConfigService(store, site="hq").settings().ips_share == "fleet"  # not in that form
    # Sharing detected bans is chosen per site on the same form.
    assert '<option value="fleet" selected>' in client.get("/ips").text
    shared = client.post("/ips", data=form | {"ips_share": "site"})
    assert shared.status_code == 200 and '<option value="site" selected>' in shared.text
    assert ConfigService(store, site="hq").settings().ips_share == "site"
    assert ConfigService(store).settings().ips_share == "fleet"
    refused = client.post("/ips", data=form | {"ips_share": "everyone"})
    assert refused.status_code == 422 and 'id="ips_share-error"' in refused.text
    assert ConfigService(store, site="hq").settings().ips_share == "site"
    # Never block from the banned list adds the network to hq.
    trusted = client.post(
        "/bans/never-block", data={"csrf_token": csrf, "site": "hq", "subnet": "198.51.100.7"}
    )
    assert "is now never blocked" in trusted.text
    subnets = {str(n.subnet) for n in ConfigService(store, site="hq").networks() if n.never_block}
    assert "198.51.100.7/32" in subnets
    assert not any(str(n.subnet) == "198.51.100.7/32" for n in ConfigService(store).networks())
