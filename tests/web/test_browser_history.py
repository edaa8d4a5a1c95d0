"""The History page in the real chromium (the fixtures of test_browser.py):
a change made on the page is listed with the administrator, its diff opens,
and Restore stages the earlier revision and leads to the Apply page."""

from __future__ import annotations

import re

import pytest

from pbxfw.usecases import ConfigService, NetworkChange
from tests.web.conftest import ADMIN
from tests.web.test_browser import (  # noqa: F401  (fixtures)
    PHONE,
    Browser,
    Page,
    Site,
    browser,
    expect,
    log_in,
    page,
    phone_page,
    shot,
    site,
)

pytestmark = pytest.mark.browser


def test_history_lists_shows_and_restores(page: Page, site: Site) -> None:  # noqa: F811
    start = ConfigService(site.store).history(1)[0]
    log_in(page)
    page.get_by_role("link", name="Add network").click()
    page.get_by_label("Name", exact=True).fill("Lab")
    page.get_by_label("Address", exact=True).fill("10.9.0.0")
    page.get_by_label("Mask", exact=True).select_option("/16")
    page.get_by_role("button", name="Add network").click()
    expect(page.get_by_role("status")).to_contain_text("Network “Lab” (10.9.0.0/16) added.")

    page.get_by_role("link", name="History").click()
    expect(page.get_by_role("heading", name="History", exact=True)).to_be_visible()
    row = page.get_by_role("row").filter(has_text="network Lab added (10.9.0.0/16)")
    expect(row).to_have_count(1)
    expect(row.get_by_role("cell", name=ADMIN, exact=True)).to_be_visible()
    expect(row.get_by_role("cell", name="web", exact=True)).to_be_visible()
    expect(row.get_by_role("cell", name="127.0.0.1", exact=True)).to_be_visible()
    shot(page, "history")

    page.get_by_role("row").filter(has_text="first recorded configuration").get_by_role(
        "link", name=str(start.rev), exact=True
    ).click()
    expect(page).to_have_url(re.compile(rf"/history/{start.rev}$"))
    expect(page.get_by_role("heading", name=f"Revision {start.rev}")).to_be_visible()
    expect(page.get_by_role("list", name="Changes")).to_contain_text("network Internet added")
    shot(page, "history-revision", full_page=False)
    page.get_by_role("button", name=f"Restore revision {start.rev}").click()

    expect(page).to_have_url(re.compile(r"/apply$"))
    expect(page.get_by_role("status")).to_contain_text(
        f"Revision {start.rev} is the stored configuration again"
    )
    assert "Lab" not in [n.name for n in ConfigService(site.store).networks()]
    newest = ConfigService(site.store).history(1)[0]
    assert newest.summary.startswith(f"restore of revision {start.rev}: network Lab removed")

    # Every control has a name; at a phone's width nothing scrolls sideways
    # (each entry a card).
    for path in ("/history", f"/history/{start.rev}"):
        page.goto(path)
        unnamed = page.evaluate(
            """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
                .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                               || (e.textContent || '').trim()))
                .map(e => e.outerHTML)"""
        )
        assert unnamed == [], (path, unnamed)
    page.set_viewport_size(PHONE)
    for path in (f"/history/{start.rev}", "/history"):
        page.goto(path)
        width = page.evaluate("() => document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (path, width)
    expect(page.get_by_text(f"restore of revision {start.rev}")).to_be_visible()
    shot(page, "history-phone")


def test_history_with_a_long_name_fits_a_phone(browser: Browser, site: Site) -> None:  # noqa: F811
    """A network's name is up to 64 characters without a space: the list and
    the revision wrap it (they once scrolled a phone sideways by 400 px)."""
    name = "N" * 64
    ConfigService(site.store).add_network(NetworkChange(name=name, subnet="10.9.0.0/16"))
    rev = ConfigService(site.store).history(1)[0].rev
    with phone_page(browser, site) as phone:
        for path in ("/history", f"/history/{rev}"):
            phone.goto(path)
            expect(phone.get_by_text(f"network {name} added").first).to_be_visible()
            width = phone.evaluate("() => document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (path, width)
