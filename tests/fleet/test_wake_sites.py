"""Notifications name their site; an agent wakes only for its own (agent.wake, storage.notify).

In-process on a real PostgreSQL server: a change of site ``b`` is notified as
``revision:N:b`` (of ``default`` as before, ``revision:N``; the bans, the
fleet's, name no site); the ``Wake`` of an agent of one site marks its
configuration to be read again for its own site's changes only, and the bans
for every batch.
"""

from __future__ import annotations

import time

from pbxfw.agent.health import Health
from pbxfw.agent.wake import Wake
from pbxfw.storage.notify import Listener, payload, payload_site
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService
from pbxfw.usecases.sites import SiteService
from tests.fleet.test_wake import received


def test_payloads_name_the_site() -> None:
    assert payload("revision", 4, "default") == "revision:4"
    assert payload("bans_revision", 9, "") == "bans_revision:9"
    assert payload("applied_revision", 5, "b") == "applied_revision:5:b"
    assert payload_site("revision:4") == "default"
    assert payload_site("applied_revision:5:b") == "b"


def test_each_sites_agent_wakes_for_its_own_changes(svc: ConfigService) -> None:
    SiteService(svc.store).add("b")
    branch = ConfigService(svc.store, site="b")
    listener = Listener(svc.store.engine)
    wakes = {
        site: Wake(svc.store.at_site(site), Health(lambda: 0.0), enabled=True)
        for site in ("default", "b")
    }
    try:
        for wake in wakes.values():
            wake.keep()
            assert wake.listening
            wake.take_bans()  # what a start reads
            wake.take_config()

        branch.update_settings({"ips_maxretry": "4"})
        assert received(listener) == [f"revision:{branch.revision()}:b"]
        svc.update_settings({"ips_maxretry": "6"})
        assert received(listener) == [f"revision:{svc.revision()}"]
        BanService(branch.store).add("203.0.113.7", jail="ssh", seconds=600)
        assert received(listener) == [f"bans_revision:{BanService(svc.store).revision()}"]

        for wake in wakes.values():
            # The three notifications arrived on each agent's own connection.
            for _ in range(50):
                wake.drain()
                if wake.bans and wake.config:
                    break
                time.sleep(0.05)
            assert wake.bans and wake.config
            wake.take_bans()
            wake.take_config()

        branch.update_settings({"ips_maxretry": "5"})
        assert received(listener) == [f"revision:{branch.revision()}:b"]
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and not wakes["b"].config:
            for wake in wakes.values():
                wake.drain()
            time.sleep(0.05)
        for wake in wakes.values():
            wake.drain()
        assert wakes["b"].take_config() is True
        assert wakes["default"].take_config() is False  # b's change is not default's
        assert wakes["default"].take_bans() is False and wakes["b"].take_bans() is False
    finally:
        listener.close()
        for wake in wakes.values():
            wake.close()
