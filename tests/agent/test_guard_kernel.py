"""The guard sets in the kernel: every banned address (``banned_v4``) and
subnet (``banned_net_v4``), each as long as its longest ban.

Packets from addresses that are not banned pay two lookups (a hash and a
mostly empty interval set) before the per-jail checks; these tests keep the guard honest as bans of
several jails come and go, and when a broader ban covers a narrower one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxfw.agent.daemon import Agent, AgentOptions
from pbxfw.kernel import NftBackend
from pbxfw.usecases import ConfigService
from pbxfw.usecases.bans import BanService, bump_bans_revision
from tests.kernel.lab import Lab, require_kernel

pytestmark = pytest.mark.kernel


@pytest.fixture
def netns() -> Iterator[tuple[Lab, str]]:
    require_kernel()
    with Lab(f"gd{os.getpid() % 10000}") as lab:
        yield lab, lab.namespace("pbx")


def elements(lab: Lab, ns: str, name: str) -> str:
    return lab.nft(ns, "list", "set", "inet", "pbxfw", name)


def test_guard_follows_bans_of_several_jails(
    svc: ConfigService, tmp_path: Path, netns: tuple[Lab, str]
) -> None:
    lab, ns = netns
    svc.update_settings({"asterisk_config_dir": "", "log_asterisk_messages": str(tmp_path / "m")})
    agent = Agent(
        svc.store,
        AgentOptions(netns=ns, state_dir=str(tmp_path / "state"), discover_asterisk=False),
        backend=NftBackend(ns),
    )
    agent.start()
    bans = BanService(svc.store)
    bans.add("198.51.100.9", jail="asterisk", seconds=600)
    bans.add("198.51.100.9", jail="ssh", seconds=60)
    agent.tick()
    guard = elements(lab, ns, "banned_v4")
    assert "198.51.100.9 timeout 10m" in guard or "198.51.100.9 timeout 600s" in guard, guard

    # The asterisk ban ends early; the ssh ban keeps the guard (60 s now).
    with svc.store.write() as repo:
        repo.remove_bans("198.51.100.9/32", "asterisk")
        bump_bans_revision(repo)
    agent.tick()
    assert "198.51.100.9" not in elements(lab, ns, "ban_asterisk_v4")
    assert "198.51.100.9" in elements(lab, ns, "ban_ssh_v4")
    guard = elements(lab, ns, "banned_v4")
    assert "198.51.100.9 timeout 1m" in guard or "198.51.100.9 timeout 60s" in guard, guard

    # A broader ban covering it: subnets have sets of their own, so both stay.
    bans.add("198.51.100.0/24", seconds=3600)
    agent.tick()
    assert "198.51.100.0/24" in elements(lab, ns, "banned_net_v4")
    assert "198.51.100.0/24" in elements(lab, ns, "ban_manual_net_v4")
    assert "198.51.100.9" in elements(lab, ns, "banned_v4")
    assert "198.51.100.9" in elements(lab, ns, "ban_ssh_v4")

    # Lifting every ban empties the guard.
    bans.remove("198.51.100.9")
    bans.remove("198.51.100.0/24")
    agent.tick()
    assert "elements" not in elements(lab, ns, "banned_v4")
    assert "elements" not in elements(lab, ns, "banned_net_v4")
