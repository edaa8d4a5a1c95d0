"""The dashboard in the real chromium: the first page after login, its charts,
tables, keyboard use and a phone's width (issue 19).

A week of aggregates as an agent's flushes write them (three jails, a few
attackers, one from a country of the loaded country database, the user names
and extensions they tried), some bans, drop counters and a node with a
failing source are stored; the page shows them as SVG charts and tables,
opens the 24-hour table with the keyboard, shows a name holding markup as
text, and fits 375 px. The screenshots go where test_browser.py puts its own.
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
#: A name an attacker chose that would run if the page did not escape it.
HOSTILE = "<script>window.pwned=1</script><img src=x onerror=pwned=2>"
#: The longest account kept, without a space to wrap at.
LONG = "x" * 64


def accounts(current: int) -> dict[tuple[int, str, str], int]:
    """(hour, jail, account) -> failures: user names and extensions tried."""
    three_days = current - 72 * 3600
    return {
        (current, "ssh", "root"): 310,
        (current - 3600, "ssh", "admin"): 120,
        (three_days, "ssh", "oracle"): 400,  # the week's first, not the day's
        (current, "web", HOSTILE): 5,
        (current, "ami", LONG): 3,
        (current, "asterisk", "100"): 900,
        (current - 5 * 3600, "asterisk", "00972592891005"): 40,  # a number dialled
        (three_days, "asterisk", "7000"): 60,
    }


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
    record_tallies(store, "pbx1", Tallies(hours, sources, totals, {}, accounts(current)), now)
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
    # The accounts tried: user names (ssh, web, ami) and extensions (SIP, IAX).
    users_day = page.get_by_role("table", name="Top user names tried, last 24 hours")
    expect(users_day.get_by_role("row")).to_have_count(5)  # the heading and 4 names
    expect(users_day.get_by_role("row").nth(1)).to_contain_text("root")
    expect(users_day.get_by_role("row").nth(1)).to_contain_text("310")
    expect(users_day).not_to_contain_text("oracle")
    users_week = page.get_by_role("table", name="Top user names tried, last 7 days")
    expect(users_week.get_by_role("row").nth(1)).to_contain_text("oracle")
    expect(users_week.get_by_role("row").filter(has_text="admin")).to_contain_text("ssh")
    extens_day = page.get_by_role("table", name="Top extensions and numbers tried, last 24 hours")
    expect(extens_day.get_by_role("row").nth(1)).to_contain_text("100")
    expect(extens_day.get_by_role("row").nth(1)).to_contain_text("asterisk")
    expect(extens_day.get_by_role("row").nth(1)).to_contain_text("900")
    expect(extens_day.get_by_role("row").nth(2)).to_contain_text("00972592891005")
    expect(extens_day).not_to_contain_text("7000")
    extens_week = page.get_by_role("table", name="Top extensions and numbers tried, last 7 days")
    expect(extens_week.get_by_role("row")).to_have_count(4)
    expect(extens_week).to_contain_text("7000")
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


def test_a_name_with_markup_is_shown_as_text(page: Page, site: Site, tmp_path: Path) -> None:
    fill(site, tmp_path)
    ui.log_in(page)
    page.goto("/dashboard")
    table = page.get_by_role("table", name="Top user names tried, last 24 hours")
    cell = table.get_by_role("row").filter(has_text="web").get_by_role("rowheader")
    expect(cell).to_have_text(HOSTILE)  # the characters, as the log wrote them
    assert table.locator("script, img").count() == 0
    assert page.locator("main script, main img").count() == 0
    assert page.evaluate("() => window.pwned") is None
    html = page.content()
    assert HOSTILE not in html and "&lt;script&gt;window.pwned=1&lt;/script&gt;" in html


def test_the_dashboard_fits_a_phone(browser: Browser, site: Site, tmp_path: Path) -> None:
    fill(site, tmp_path)
    # A full-length IPv6 address among the top sources (it once ran 10 px
    # past a phone's screen).
    now = time.time()
    wide = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"
    day = int(now) - int(now) % 86400
    record_tallies(site.store, "pbx2", Tallies({}, {(day, wide): ("asterisk", 5000)}, {}, {}), now)
    with ui.phone_page(browser, site) as phone:
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
        # The accounts' tables become cards; the longest name wraps inside its card.
        names = phone.get_by_role("table", name="Top user names tried, last 24 hours")
        expect(names).to_be_visible()
        card = names.get_by_role("row").filter(has_text=LONG)
        row = card.bounding_box()
        assert row is not None and row["x"] >= 0 and row["x"] + row["width"] <= PHONE["width"]
        width = phone.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], width
        shot(phone, "phone-dashboard")
