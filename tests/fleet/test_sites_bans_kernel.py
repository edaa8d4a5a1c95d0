"""Shared bans across sites, with real agents and kernels (issue 16, docs/fleet-bans.md).

Nodes a and b in the site ``default``, node c in the site ``branch``, three
``pbxfw agent`` processes in three network namespaces on one real PostgreSQL
(tests/fleet/nodes.py):

- a network marked never-block at ``branch`` is honoured at c for a ban
  detected at a (a and b enforce it; it stays stored);
- ``ips_share`` = ``site`` at ``default``: a's bans stay within ``default``;
  ``branch`` sharing ``site``: it takes no other site's bans, and its own
  stay at its nodes; both ``fleet``: every node has every ban.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.agent.test_agent_kernel import wait_until
from tests.fleet.nodes import Fleet, nowhere, start_listening
from tests.fleet.test_propagation_kernel import everywhere
from tests.kernel.lab import Lab, require_kernel

pytestmark = pytest.mark.kernel


@pytest.fixture
def fleet(tmp_path: Path, db_url: str) -> Iterator[Fleet]:
    require_kernel()
    with Lab(f"ss{os.getpid() % 10000}") as lab:
        fleet = Fleet(lab, db_url, tmp_path)
        try:
            fleet.configure()
            fleet.configure(site="branch")
            nodes = [fleet.add(name) for name in ("a", "b", "c")]
            start_listening(fleet, nodes, sites={"c": "branch"})
            yield fleet
        finally:
            fleet.close()


def read_past(fleet: Fleet, address: str) -> None:
    """An administrator's ban of ``address`` (every node enforces it) in every
    kernel: each agent has read every ban written before it."""
    added = fleet.pbxfw("bans", "add", address, "--jail", "asterisk")
    assert added.returncode == 0, added.stderr
    took = wait_until(partial(everywhere, fleet.nodes, address), 10, step=0.02)
    assert took is not None, [n.log.read_text()[-2000:] for n in fleet.nodes]


def test_never_block_at_site_b_is_honoured_for_a_ban_detected_at_site_a(fleet: Fleet) -> None:
    a, b, c = fleet.nodes
    office = fleet.pbxfw(
        "network", "add", "Office", "198.51.100.0/24", "--never-block", "--site", "branch"
    )
    assert office.returncode == 0, office.stderr
    a.fail("198.51.100.30", 5)
    took = wait_until(lambda: everywhere([a, b], "198.51.100.30"), 10, step=0.02)
    assert took is not None, a.log.read_text()[-3000:]
    read_past(fleet, "203.0.113.30")
    assert "198.51.100.30" not in c.banned()
    assert "not enforcing here the ban of 198.51.100.30 (fleet:a)" in c.log.read_text()
    # Still stored, detected at a: branch's never-block lifts nothing of default's.
    listed = fleet.pbxfw("bans", "list", "--json")
    ban = next(x for x in json.loads(listed.stdout) if x["address"] == "198.51.100.30")
    assert (ban["origin"], ban["node"], ban["site"]) == ("jail:asterisk", "a", "default")


def test_ips_share_site_keeps_bans_within_their_site(fleet: Fleet) -> None:
    a, b, c = fleet.nodes
    for site in ("default", "branch"):
        shared = fleet.pbxfw("settings", "set", "ips_share=site", "--site", site)
        assert shared.returncode == 0, shared.stderr
    a.fail("198.51.100.31", 5)
    c.fail("198.51.100.32", 5)
    took = wait_until(lambda: everywhere([a, b], "198.51.100.31"), 10, step=0.02)
    assert took is not None, a.log.read_text()[-3000:]
    took = wait_until(lambda: "198.51.100.32" in c.banned(), 10, step=0.02)
    assert took is not None, c.log.read_text()[-3000:]
    read_past(fleet, "203.0.113.31")
    assert "198.51.100.31" not in c.banned()
    assert nowhere([a, b], "198.51.100.32")

    # default shares fleet, branch still site: branch takes no other site's bans.
    fleet.pbxfw("settings", "set", "ips_share=fleet", "--site", "default")
    read_past(fleet, "203.0.113.32")
    assert "198.51.100.31" not in c.banned()
    # Both fleet: every node has every ban (the change makes every agent read all).
    fleet.pbxfw("settings", "set", "ips_share=fleet", "--site", "branch")
    took = wait_until(lambda: everywhere([a, b, c], "198.51.100.31"), 10, step=0.02)
    assert took is not None, c.log.read_text()[-3000:]
    took = wait_until(lambda: everywhere([a, b, c], "198.51.100.32"), 10, step=0.02)
    assert took is not None, a.log.read_text()[-3000:]
