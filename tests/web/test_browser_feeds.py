"""The Feeds page (issue 17) in a real chromium against a real server: add a feed
through the form, a refusal next to its field, what the agents reported, update
now, remove; every control named; fits a phone."""

from __future__ import annotations

import pytest

from pbxfw.storage.feeds import FeedStatus
from pbxfw.usecases.feeds import FeedService
from tests.web import test_browser as ui
from tests.web.test_browser import PHONE, Page, Site, expect, log_in, shot

# The browser, the server and the page of test_browser.py.
browser = ui.browser
site = ui.site
page = ui.page

pytestmark = [pytest.mark.browser]


def test_feeds_on_the_feeds_page(page: Page, site: Site) -> None:
    log_in(page)
    page.get_by_role("link", name="Feeds").click()
    expect(page.get_by_role("heading", name="Blocklist feeds")).to_be_visible()
    expect(page.get_by_role("cell", name="No feeds")).to_be_visible()
    page.get_by_label("Name", exact=True).fill("apiban")
    page.get_by_label("URL", exact=True).fill("https://apiban.org/api/banned")
    page.get_by_label("Format", exact=True).select_option("apiban")
    page.get_by_label("Fetch every", exact=True).fill("30m")
    page.get_by_label("Blocks", exact=True).fill("sip,nosuch")
    page.get_by_label("Headers (optional)").fill("Authorization: Bearer SECRET-KEY")
    page.get_by_role("button", name="Add feed").click()
    # Refused on its field; what was typed stays.
    expect(page.locator("#new_scope-error")).to_contain_text("nosuch")
    expect(page.get_by_label("URL", exact=True)).to_have_value("https://apiban.org/api/banned")
    assert FeedService(site.store).feeds() == []
    page.get_by_label("Blocks", exact=True).fill("sip")
    page.get_by_role("button", name="Add feed").click()
    expect(page.get_by_role("status")).to_contain_text("Feed “apiban” added")
    row = page.get_by_role("row", name="apiban")
    expect(row).to_contain_text("not fetched yet")
    expect(row).to_contain_text("Authorization (values hidden)")
    expect(page.locator("body")).not_to_contain_text("SECRET-KEY")
    (feed,) = FeedService(site.store).feeds()
    assert (feed.format, feed.every, feed.scope) == ("apiban", 1800, ("sip",))
    # What an agent reported.
    FeedService(site.store).save_status(
        FeedStatus(
            node="pbx1",
            feed="apiban",
            last_fetch=1_796_428_800.0,
            next_fetch=1_796_430_600.0,
            entries=4321,
            refused={"too broad": 1},
            error="HTTP 500 from apiban.org",
        )
    )
    page.reload()
    row = page.get_by_role("row", name="apiban")
    expect(row).to_contain_text("4,321")
    expect(row).to_contain_text("too broad 1")
    expect(row).to_contain_text("HTTP 500 from apiban.org")
    expect(row).to_contain_text("2026-12-05 00:30 UTC")
    shot(page, "feeds")
    page.get_by_role("button", name="Update apiban now").click()
    expect(page.get_by_role("status")).to_contain_text("will be fetched at the next look")
    assert "apiban" in FeedService(site.store).update_requests()
    unnamed = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
            .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                           || (e.textContent || '').trim()))
            .map(e => e.outerHTML)"""
    )
    assert unnamed == []
    # On a phone the table reflows: no horizontal scrolling of the page.
    page.set_viewport_size(PHONE)
    page.reload()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    page.set_viewport_size(ui.DESKTOP)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Remove apiban").click()
    expect(page.get_by_role("status")).to_contain_text("Feed “apiban” removed")
    assert FeedService(site.store).feeds() == []
