"""The dashboard in the real chromium: the first page after login, its charts,
tables, keyboard use and a phone's width (issue 19).

A week of aggregates as an agent's flushes write them (three jails, a few
attackers, one from a country of the loaded country database), some bans,
drop counters and a node with a failing source are stored; the page shows
them as SVG charts and tables, opens the 24-hour table with the keyboard, and
fits 375 px. The screenshots go where test_browser.py puts its own.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from pbxfw.domain.nodes import Node
from pbxfw.domain.sources import SourceStatus
from pbxfw.storage.aggregates import Tallies
from pbxfw.storage.source_status import save_source_statuses
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.dashboard import record_drops, record_tallies
from pbxfw.usecases.geo import GeoService
from pbxfw.usecases.nodes import NodeService
from tests.web import test_browser as ui
from tests.web.conftest import ADMIN, PASSWORD
from tests.web.test_browser import PHONE, Browser, Page, Site, expect, shot

browser = ui.browser
site = ui.site
page = ui.page

pytestmark = pytest.mark.browser

JAILS = ("asterisk", "ssh", "ami")


def fill(site: Site, tmp_path: Path) -> None:
    store, now = site.store, time.time()
    current = int(now) - int(now) % 3600
    hours: dict[tuple[int, str, str], int] = {}
    for i in range(7 * 24):
        hour = current - 3600 * i
        # A daily rhythm, a storm 30 hours ago, SSH guessing every night.
        hours[(hour, "asterisk", "ChallengeResponseFailed")] = (
            20 + (i % 24) * 3 + (400 if i == 30 else 0)
        )
        if i % 24 < 8:
            hours[(hour, "ssh", "invalid_user")] = 15 + i % 5
        if i % 12 == 0:
            hours[(hour, "ami", "failed_login")] = 4
    today = int(now) - int(now) % 86400
    sources = {
        (today, "203.0.113.7"): ("asterisk", 940),
        (today - 86400, "203.0.113.7"): ("asterisk", 500),
        (today, "198.51.100.23"): ("ssh", 320),
        (today, "2001:db8:77::5"): ("asterisk", 120),
        (today - 2 * 86400, "192.0.2.200"): ("ami", 28),
    }
    totals: dict[tuple[str, str], int] = {}
    for (_h, jail, event), n in hours.items():
        totals[(jail, event)] = totals.get((jail, event), 0) + n
    record_tallies(store, "pbx1", Tallies(hours, sources, totals, {}), now)
    record_drops(
        store,
        "pbx1",
        {("jail", "asterisk"): (18342, 9823411), ("default_deny", ""): (2210, 142881)},
        now,
    )
    countries = tmp_path / "countries.csv"
    countries.write_text("203.0.113.0/24,NL\n198.51.100.0/24,US\n")
    GeoService(store).import_file(countries, now=now, built="2026-12-01")
    bans = BanService(store)
    for address in ("203.0.113.7", "198.51.100.23", "198.51.100.0/28"):
        bans.add(address, seconds=3600, reason="dashboard test")
    NodeService(store).report(
        Node("pbx1", "default", now - 86400, now - 3600, now, None, 3, "test", 512, "")
    )
    with store.write() as repo:
        save_source_statuses(
            repo,
            [
                SourceStatus(
                    "/var/log/auth.log",
                    "ssh",
                    "No such file or directory",
                    now - 60,
                    3,
                    now,
                    "pbx1",
                )
            ],
        )


def test_the_dashboard_is_the_first_page_and_shows_the_week(
    page: Page, site: Site, tmp_path: Path
) -> None:
    fill(site, tmp_path)
    page.goto("/login")
    page.get_by_label("User name").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/dashboard$"))
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Dashboard")).to_have_attribute("aria-current", "page")

    # The charts: SVG drawn on the server, one bar segment per hour and jail.
    day = page.get_by_role("img", name="Failures per hour, last 24 hours, per jail")
    expect(day).to_be_visible()
    assert day.locator("rect").count() >= 24
    week = page.get_by_role("img", name="Failures per hour, last 7 days, per jail")
    assert week.locator("rect").count() >= 7 * 24
    for jail in JAILS:
        expect(page.get_by_role("list", name="Jails").get_by_text(jail, exact=True)).to_be_visible()

    top = page.get_by_role("table", name="Top attacking addresses")
    first = top.get_by_role("row").nth(1)
    expect(first).to_contain_text("203.0.113.7")
    expect(first).to_contain_text("NL")
    expect(first).to_contain_text("1440")
    expect(top.get_by_role("row").filter(has_text="198.51.100.23")).to_contain_text("US")
    expect(top.get_by_role("row")).to_have_count(5)  # the heading and 4 addresses
    expect(page.get_by_text("Not counted: the log recognisers")).to_be_visible()
    expect(
        page.get_by_role("table", name="Active bans by origin").get_by_role("row", name="manual 3")
    ).to_be_visible()
    drops = page.get_by_role("table", name="Drops per reason")
    expect(drops.get_by_role("row").filter(has_text="banned (jail)")).to_contain_text("18342")
    agents = page.get_by_role("table", name="Agents")
    expect(agents).to_contain_text("pbx1")
    expect(agents).to_contain_text("512 bytes")
    expect(agents).to_contain_text("/var/log/auth.log: No such file or directory")
    shot(page, "dashboard")

    # The keyboard alone opens the 24-hour figures as a table.
    summary = page.get_by_text("The same as a table")
    for _ in range(80):
        page.keyboard.press("Tab")
        if summary.evaluate("e => e === document.activeElement"):
            break
    else:
        raise AssertionError("Tab never reached the table's summary")
    page.keyboard.press("Enter")
    table = page.get_by_role("table", name="Failures per hour, last 24 hours")
    expect(table).to_be_visible()
    assert table.get_by_role("row").count() == 25  # the heading and every hour

    # Every control has a name a screen reader can say.
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, button, a[href], summary')]
            .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                           || (e.textContent || '').trim()))
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []


def test_the_dashboard_fits_a_phone(browser: Browser, site: Site, tmp_path: Path) -> None:
    fill(site, tmp_path)
    # A full-length IPv6 address among the top sources (it once ran 10 px
    # past a phone's screen).
    now = time.time()
    wide = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"
    day = int(now) - int(now) % 86400
    record_tallies(site.store, "pbx2", Tallies({}, {(day, wide): ("asterisk", 5000)}, {}, {}), now)
    context = browser.new_context(
        viewport=PHONE, base_url=site.url, is_mobile=True, has_touch=True, reduced_motion="reduce"
    )
    context.set_default_timeout(5000)
    phone = context.new_page()
    try:
        ui.log_in(phone)
        phone.goto("/dashboard")
        expect(
            phone.get_by_role("img", name="Failures per hour, last 7 days, per jail")
        ).to_be_visible()
        expect(phone.get_by_role("table", name="Top attacking addresses")).to_contain_text(wide)
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        # The hour charts keep a readable width and scroll sideways in their box.
        chart = phone.get_by_role("img", name="Failures per hour, last 24 hours, per jail")
        box = chart.bounding_box()
        assert box is not None and box["width"] >= 600 and box["height"] >= 150
        frame = phone.locator("figure.chart-box").first
        scrolls = frame.evaluate("e => [e.clientWidth, e.scrollWidth]")
        assert scrolls[0] <= PHONE["width"] < scrolls[1], scrolls
        frame.focus()
        phone.keyboard.press("ArrowRight")
        expect(frame).not_to_have_js_property("scrollLeft", 0)
        shot(phone, "phone-dashboard")
    finally:
        context.close()
