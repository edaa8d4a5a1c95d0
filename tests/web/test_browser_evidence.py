"""A ban's evidence in the real browser (issue 19): from the Bans page, a click
on the address opens /bans/ADDRESS with the rule and the log lines (file and
line number), readable at a phone's width; screenshots ``ban-evidence``."""

from __future__ import annotations

import ipaddress
import re
from datetime import UTC, datetime

from pbxfw.domain.bans import Ban
from pbxfw.domain.evidence import BanEvidence, EvidenceLine
from pbxfw.ips.events import BanDecision
from pbxfw.usecases.bans import BanService
from tests.web.test_browser import (  # the fixtures of the browser tests
    PHONE,
    Browser,
    Page,
    Site,
    browser,  # noqa: F401
    expect,
    log_in,
    page,  # noqa: F401
    phone_page,
    shot,
    site,  # noqa: F401
)

ATTACKER = "198.51.100.40"


def _detected() -> Ban:
    now = datetime.now(UTC)
    decision = BanDecision(
        host=ipaddress.ip_address(ATTACKER),
        jail="asterisk",
        scope=frozenset({"sip", "iax", "ajam"}),
        time=now,
        seconds=3600,
        failures=3,
        first_failure=now,
        reason="3 asterisk failures within 3600 s (offence 1: 3600 s)",
    )
    lines = tuple(
        EvidenceLine(
            "/var/log/asterisk/messages",
            1200 + n,
            f"[2026-12-05 03:00:0{n}] NOTICE[2714] res_pjsip/pjsip_distributor.c: Request "
            f"'REGISTER' from '<sip:10{n}@203.0.113.1>' failed for '{ATTACKER}:5060' "
            f"(callid: attack-{n}) - Failed to authenticate",
            now.timestamp(),
            "InvalidPassword",
        )
        for n in range(3)
    )
    evidence = BanEvidence("asterisk", 3, 3600, lines)
    return Ban.from_decision(decision, now.timestamp(), "pbx-a", "default", evidence)


def test_a_click_on_a_banned_address_shows_its_lines(page: Page, site: Site) -> None:  # noqa: F811
    bans = BanService(site.store)
    bans.record([_detected()])
    bans.add("203.0.113.0/24", reason="blocklist", who="cli:root (sudo: alice)")
    log_in(page)
    page.get_by_role("link", name="Banned", exact=True).click()
    page.get_by_role("link", name=ATTACKER).click()
    expect(page).to_have_url(re.compile(rf"/bans/{re.escape(ATTACKER)}$"))
    expect(page.get_by_role("heading", name=f"Why {ATTACKER} is banned")).to_be_visible()
    expect(page.get_by_text("jail asterisk: 3 failures within 1 h")).to_be_visible()
    table = page.get_by_role("table", name="Log lines of the asterisk ban")
    expect(table.get_by_role("row")).to_have_count(4)  # the header and three lines
    expect(table.get_by_text("/var/log/asterisk/messages:1201")).to_be_visible()
    expect(table.get_by_text("(callid: attack-2)", exact=False)).to_be_visible()
    shot(page, "ban-evidence")
    # The lines fold away (a details element) and back.
    page.get_by_text("3 log lines that caused it").click()
    expect(table).to_be_hidden()
    page.get_by_text("3 log lines that caused it").click()
    expect(table).to_be_visible()

    # At a phone's width nothing is wider than the screen: long lines wrap.
    page.set_viewport_size(PHONE)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width
    shot(page, "ban-evidence-phone")

    # An administrator's ban says who made it, with no lines.
    page.goto("/bans")
    page.get_by_role("link", name="203.0.113.0/24").click()
    expect(page.get_by_text("cli:root (sudo: alice)")).to_be_visible()
    expect(page.get_by_role("table")).to_have_count(0)


def test_a_full_ipv6_address_fits_a_phone(browser: Browser, site: Site) -> None:  # noqa: F811
    """The page's title holds the address: a full IPv6 one (39 characters)
    wraps rather than scroll a phone sideways (it once was 470 px wide)."""
    wide = "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"
    BanService(site.store).add(wide, reason="blocklist", who="cli:root")
    with phone_page(browser, site) as phone:
        for path in ("/bans", f"/bans/{wide}"):
            phone.goto(path)
            expect(phone.get_by_text(wide).first).to_be_visible()
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], (path, width)
