"""The Apply flow of the page with the real applier: nftables in a namespace.

The same browser and server as test_browser.py, but ``applier`` is pbxfw's
own (FirewallApplier over FirewallService) applying in a network namespace
this test creates: keeping a change leaves the new table in the kernel; not
keeping it brings the previous table back and the stored configuration with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxfw.storage.repository import Store
from pbxfw.usecases import ConfigService, NetworkChange
from pbxfw.usecases.firewall import FirewallApplier, FirewallService
from tests.kernel.lab import Lab, require_kernel
from tests.web import test_browser as ui
from tests.web.test_browser import Page, Site, _apply_with_short_window, expect, log_in

# The browser, the server and the page of test_browser.py, with the real applier below.
browser = ui.browser
site = ui.site
page = ui.page

pytestmark = [pytest.mark.browser, pytest.mark.kernel]


@pytest.fixture
def lab() -> Iterator[tuple[Lab, str]]:
    require_kernel()
    with Lab(f"wb{os.getpid() % 10000}") as lab:
        yield lab, lab.namespace("pbx")


@pytest.fixture
def applier(store: Store, lab: tuple[Lab, str], tmp_path: Path) -> FirewallApplier:  # type: ignore[override]
    firewall = FirewallService(store, tmp_path / "state")
    firewall.apply(lab[1])  # a first, confirmed apply
    return FirewallApplier(firewall, lab[1])


def table(lab: tuple[Lab, str]) -> str:
    return lab[0].nft(lab[1], "-s", "list", "table", "inet", "pbxfw")


def test_keep_changes_leaves_the_new_rules(page: Page, site: Site, lab: tuple[Lab, str]) -> None:
    before = table(lab)
    svc = ConfigService(site.store)
    svc.update_settings({"firewall_enabled": True})
    svc.add_network(NetworkChange(name="Office", subnet="10.9.0.0/16", allow=["ssh"]))
    log_in(page)
    page.get_by_role("link", name="Apply", exact=True).click()
    expect(page.get_by_text('add network "Office" 10.9.0.0/16')).to_be_visible()
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#pending")).to_be_visible()
    page.get_by_role("button", name="Keep changes").click()
    expect(page.get_by_role("status")).to_have_text("Changes kept.")
    assert table(lab) != before
    assert "10.9.0.0/16" in table(lab)


def test_a_change_not_kept_rolls_back_kernel_and_storage(
    page: Page, site: Site, lab: tuple[Lab, str]
) -> None:
    before = table(lab)
    svc = ConfigService(site.store)
    svc.update_settings({"firewall_enabled": True})
    svc.add_network(NetworkChange(name="Mistake", subnet="10.66.0.0/16", block=["sip"]))
    log_in(page)
    _apply_with_short_window(page, 5)
    assert table(lab) != before
    expect(page.locator("#pending-title")).to_have_text("Rolled back", timeout=12000)
    assert table(lab) == before
    assert "Mistake" not in [n.name for n in svc.networks()]
    assert svc.settings().firewall_enabled is False
