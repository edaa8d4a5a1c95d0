"""The Notifications page (issue 19) in a real chromium against a real server:
a Slack webhook and an e-mail channel added through the form, refusals next to
their fields with nothing stored (the CLI says so), Test against a real HTTP
receiver and a real SMTP server (aiosmtpd, STARTTLS and AUTH) on loopback,
Remove; no secret typed into the page ever comes back in its HTML; the
keyboard alone; a phone's width."""

from __future__ import annotations

import json
import re
import socket
from urllib.parse import quote

import pytest

from pbxfw.domain.notifications import ChannelStatus
from pbxfw.usecases.notifications import NotifyService
from tests.helpers import Cli
from tests.notify_servers import (
    MAIL_PASSWORD,
    MAIL_USER,
    Certs,
    Mailbox,
    Receiver,
    certs,
    receiver,
    smtp_starttls,
)
from tests.web import test_browser as ui
from tests.web.test_browser import PHONE, Browser, Page, Site, expect, log_in, phone_page, shot

# The browser, the server and the page of test_browser.py; the receivers of
# tests/notify_servers.py.
browser = ui.browser
site = ui.site
page = ui.page
__all__ = ["certs", "receiver", "smtp_starttls"]  # fixtures, used by name

pytestmark = [pytest.mark.browser]

#: The token part of a Slack-like hook path: masked in every listing.
TOKEN = "abcdEFGHijklMNOPqrst1234"
#: The e-mail password as it stands in a URL (it has ':' and '/').
ENCODED_PASSWORD = quote(MAIL_PASSWORD, safe="")
SECRETS = (TOKEN, MAIL_PASSWORD, ENCODED_PASSWORD, "s3cret")

UNNAMED_CONTROLS = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea, button, a[href]')]
    .filter(e => !((e.labels && e.labels.length) || e.getAttribute('aria-label')
                   || (e.textContent || '').trim()))
    .map(e => e.outerHTML)"""


def assert_fits(page: Page) -> None:
    """Nothing scrolls sideways at the page's width; else which elements stick out."""
    width = page.evaluate("() => document.documentElement.scrollWidth")
    wider = page.evaluate(
        """w => [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().left + e.scrollWidth > w + 1)
            .map(e => `${e.tagName}.${e.className}: ${(e.textContent || '').trim().slice(0, 40)}`)""",
        PHONE["width"],
    )
    assert width <= PHONE["width"], (width, wider)


def assert_no_text_overflows(page: Page) -> None:
    """The form's hints and errors wrap inside their boxes (a long URL in a
    hint once ran over the next field)."""
    over = page.evaluate(
        """() => [...document.querySelectorAll('form .hint, form .field-error, tbody td, tbody th')]
            .filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.trim())"""
    )
    assert over == []


def hook_url(receiver: Receiver) -> str:
    return f"{receiver.url}/services/T0AAAAAAA/B0BBBBBBB/{TOKEN}"


def mail_url(box: Mailbox, certs: Certs, to: str = "noc@example.com") -> str:
    return (
        f"smtp://{MAIL_USER}:{ENCODED_PASSWORD}@127.0.0.1:{box.port}"
        f"?to={to}&from=pbx@example.com&cafile={certs.ca}"
    )


def stored(cli: Cli) -> dict[str, dict[str, object]]:
    """The channels as `pbxfw notify list --json` gives them, by name."""
    result = cli("notify", "list", "--json")
    assert result.exit_code == 0, result.stderr
    return {c["name"]: c for c in json.loads(result.stdout)}


def assert_no_secret(page: Page) -> None:
    """Neither the text nor the markup (values, attributes) holds a secret."""
    html = page.content()
    for secret in SECRETS:
        assert secret not in html, secret


def fill_form(page: Page, name: str, url: str, template: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Target", exact=True).fill(url)
    page.get_by_label("Template", exact=True).select_option(template)
    page.get_by_role("button", name="Add channel").click()


def test_channels_on_the_notifications_page(
    page: Page,
    site: Site,
    cli: Cli,
    receiver: Receiver,
    smtp_starttls: Mailbox,
    certs: Certs,
) -> None:
    log_in(page)
    page.get_by_role("link", name="Notifications").click()
    expect(page.get_by_role("heading", name="Notifications", exact=True)).to_be_visible()
    expect(page.get_by_role("cell", name=re.compile("^No channels"))).to_be_visible()
    target = page.get_by_label("Target", exact=True)

    # A webhook with a typo in its scheme: refused on Target; the token typed
    # is not sent back (the field shows it masked and says to type it again).
    fill_form(page, "team", hook_url(receiver).replace("http:", "htp:"), "slack")
    expect(page.get_by_role("alert")).to_contain_text("Nothing was saved")
    expect(page.locator("#new_url-error")).to_contain_text("a webhook is an http:// or https://")
    expect(page.locator("#new_url-error")).to_contain_text("in place of ****")
    expect(target).to_have_attribute("aria-invalid", "true")
    expect(target).to_have_value(
        re.compile(r"^htp://127\.0\.0\.1:\d+/services/T0AAAAAAA/B0BBBBBBB/\*\*\*\*$")
    )
    expect(page.get_by_label("Name", exact=True)).to_have_value("team")
    expect(page.get_by_label("Template", exact=True)).to_have_value("slack")
    assert_no_secret(page)
    assert stored(cli) == {}
    # Mending only the scheme keeps "****" where the token was: refused, not
    # stored with "****" as the token.
    target.fill(target.input_value().replace("htp:", "http:"))
    page.get_by_role("button", name="Add channel").click()
    expect(page.locator("#new_url-error")).to_contain_text(
        "type the password or token in place of ****"
    )
    assert stored(cli) == {}
    target.fill(hook_url(receiver))
    page.get_by_role("button", name="Add channel").click()
    expect(page.get_by_role("status")).to_contain_text("Channel “team” added.")
    assert_no_secret(page)
    team = stored(cli)["team"]
    assert team["template"] == "slack" and str(team["url"]).endswith("/B0BBBBBBB/****")

    # E-mail: a recipient that is not an address and a webhook template, each
    # refused on its own field; then a taken name; nothing stored meanwhile.
    fill_form(page, "noc", mail_url(smtp_starttls, certs, to="noc.example.com"), "slack")
    expect(page.locator("#new_url-error")).to_contain_text(
        "'noc.example.com' is not an e-mail address (to=)"
    )
    expect(page.locator("#new_template-error")).to_contain_text(
        "an e-mail channel has no webhook template"
    )
    template = page.get_by_label("Template", exact=True)
    expect(template).to_have_attribute("aria-invalid", "true")
    expect(template).to_have_attribute("aria-describedby", re.compile("new_template-error"))
    expect(target).to_have_value(re.compile(rf"^smtp://{MAIL_USER}:\*\*\*\*@127\.0\.0\.1:"))
    assert_no_secret(page)
    fill_form(page, "TEAM", mail_url(smtp_starttls, certs), "")
    expect(page.locator("#new_name-error")).to_contain_text("a channel named 'TEAM' exists already")
    assert_no_secret(page)
    assert sorted(stored(cli)) == ["team"]
    # The template left "by the target": an smtp:// target is an e-mail channel.
    fill_form(page, "noc", mail_url(smtp_starttls, certs), "")
    expect(page.get_by_role("status")).to_contain_text("Channel “noc” added.")
    noc = stored(cli)["noc"]
    assert noc["template"] == "email" and noc["kind"] == "email"
    assert str(noc["url"]).startswith(f"smtp://{MAIL_USER}:****@127.0.0.1:")

    # The list: each channel masked, never sent yet.
    row = page.get_by_role("row", name=re.compile("^team"))
    expect(row).to_contain_text("slack")
    expect(row).to_contain_text("/services/T0AAAAAAA/B0BBBBBBB/****")
    expect(row).to_contain_text("never")
    expect(page.get_by_role("row", name=re.compile("^noc"))).to_contain_text(
        "to=noc@example.com&from=pbx@example.com"
    )
    assert_no_secret(page)

    # Test: the Slack body reaches the receiver, the page says so.
    page.get_by_role("button", name="Send a test message to team").click()
    expect(page.get_by_role("status")).to_have_text("Test message sent to “team”.")
    [body] = receiver.wait(1)
    assert receiver.paths == [f"/services/T0AAAAAAA/B0BBBBBBB/{TOKEN}"]
    assert set(body) == {"text"} and body["text"].startswith("*Test message for channel team*")
    # A receiver that refuses: the reason, on the page, masked.
    receiver.status = 500
    page.get_by_role("button", name="Send a test message to team").click()
    expect(page.get_by_role("alert")).to_contain_text("Test of “team” failed: HTTP 500")
    assert_no_secret(page)
    # The mail goes through STARTTLS with the login to the real SMTP server.
    page.get_by_role("button", name="Send a test message to noc").click()
    expect(page.get_by_role("status")).to_have_text("Test message sent to “noc”.")
    [mail] = smtp_starttls.wait(1)
    assert mail["Subject"] == f"[pbxfw default/{socket.gethostname()}] Test message for channel noc"
    assert smtp_starttls.logins == [MAIL_USER] and smtp_starttls.secure == [True]
    assert smtp_starttls.recipients == [["noc@example.com"]]

    # What the agents report: last delivery, last error, dropped messages.
    NotifyService(site.store).save_statuses(
        [
            ChannelStatus("noc", "pbx1", last_sent_at=1_796_428_800.0, sent=4, updated_at=1.0),
            ChannelStatus(
                "team",
                "pbx1",
                last_error="timed out after 10 s",
                last_error_at=1_796_428_900.0,
                failed=1,
                dropped=7,
                updated_at=1.0,
            ),
        ]
    )
    page.reload()
    team_row = page.get_by_role("row", name=re.compile("^team"))
    expect(team_row.get_by_role("cell").nth(3)).to_have_text("timed out after 10 s")
    expect(team_row.get_by_role("cell").nth(4)).to_have_text("7")
    expect(page.get_by_role("row", name=re.compile("^noc"))).to_contain_text("2026-12-05")
    shot(page, "notifications")
    assert_no_text_overflows(page)
    assert page.evaluate(UNNAMED_CONTROLS) == []

    # Remove (after the confirmation the page's dialog handler accepts).
    page.get_by_role("button", name="Remove team").click()
    expect(page.get_by_role("status")).to_have_text("Channel “team” removed.")
    expect(page.get_by_role("row", name=re.compile("^team"))).to_have_count(0)
    assert sorted(stored(cli)) == ["noc"]
    assert_no_secret(page)


def test_the_notifications_page_with_the_keyboard_alone(
    page: Page, site: Site, cli: Cli, receiver: Receiver
) -> None:
    log_in(page)
    page.goto("/dashboard")

    def focused() -> str:
        return str(
            page.evaluate(
                "() => { const e = document.activeElement;"
                " return (e.getAttribute('aria-label') || e.labels?.[0]?.textContent"
                " || e.textContent || '').trim(); }"
            )
        )

    def tab_to(name: str, limit: int = 80) -> None:
        for _ in range(limit):
            page.keyboard.press("Tab")
            if focused() == name:
                return
        raise AssertionError(f"Tab never reached {name!r}")

    tab_to("Notifications")
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/notifications$"))
    tab_to("Name")
    page.keyboard.type("kb hook")
    page.keyboard.press("Tab")
    assert focused() == "Target"
    page.keyboard.type(receiver.url + "/kb")
    page.keyboard.press("Tab")
    assert focused().startswith("Template")
    page.keyboard.type("mattermost")  # a closed select takes typed letters
    expect(page.get_by_label("Template", exact=True)).to_have_value("mattermost")
    tab_to("Add channel")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Channel “kb hook” added.")
    assert stored(cli)["kb hook"]["template"] == "mattermost"

    tab_to("Send a test message to kb hook")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Test message sent to “kb hook”.")
    [body] = receiver.wait(1)
    assert body["username"] == "pbxfw" and body["text"].startswith("#### Test message")

    tab_to("Remove kb hook")
    page.keyboard.press("Enter")  # the confirmation is accepted by the page fixture
    expect(page.get_by_role("status")).to_have_text("Channel “kb hook” removed.")
    assert stored(cli) == {}


def test_the_notifications_page_fits_a_phone(browser: Browser, site: Site, cli: Cli) -> None:
    service = NotifyService(site.store)
    service.add(
        "a_rather_long_channel_name_for_the_operations_team_on_call",
        "https://chat.example.com/hooks/xq8rm3k1obfxbxw7s4k9t5m2he/and/a/rather/long/path/too",
        "mattermost",
    )
    service.add(
        "noc",
        "smtps://pbx:s3cret@mail.a-long-domain-name.example.com"
        "?to=noc@example.com,the-boss@example.com,on-call@example.com&from=pbx@example.com",
    )
    service.save_statuses(
        [
            ChannelStatus(
                "noc",
                "pbx1",
                last_error="SMTP: (535, b'5.7.8 Authentication credentials invalid, "
                "see https://support.example.com/smtp/auth-failures-and-what-to-do')",
                last_error_at=1.0,
                updated_at=1.0,
            )
        ]
    )
    with phone_page(browser, site) as phone:
        phone.goto("/notifications")
        expect(phone.get_by_role("row", name=re.compile("^noc"))).to_contain_text("535")
        assert_fits(phone)
        expect(phone.get_by_role("button", name="Remove noc")).to_be_visible()
        shot(phone, "phone-notifications")
        assert_no_text_overflows(phone)
        assert_no_secret(phone)
        # A refused form, its long messages beside the fields, fits too.
        phone.get_by_label("Name", exact=True).fill("x/y")
        phone.get_by_label("Target", exact=True).fill(
            "smtp://pbx:s3cret@mail.example.com?to=not-an-address-at-all-but-rather-long"
        )
        phone.get_by_role("button", name="Add channel").click()
        expect(phone.locator("#new_name-error")).to_contain_text("'/'")
        expect(phone.locator("#new_url-error")).to_contain_text("is not an e-mail address")
        assert_fits(phone)
        assert_no_secret(phone)
        assert sorted(stored(cli)) == [
            "a_rather_long_channel_name_for_the_operations_team_on_call",
            "noc",
        ]
