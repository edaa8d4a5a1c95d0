"""Shared bans with real agents and kernels (issue 16, docs/fleet-bans.md).

Three ``pbxfw agent`` processes (nodes a, b, c) in three network namespaces
on one real PostgreSQL (tests/fleet/nodes.py):

- a ban detected at a carries its origin (``bans list --json``), and
  ``pbxfw bans rm`` takes it out of every kernel;
- ``ips_share`` = ``off``: a ban stays at the node that detected it; set
  back to ``site``, the other nodes take it;
- the burst: 10,000 bans recorded at node a (the use case a's agent uses)
  reach b's and c's kernels within a bounded wait (the figure:
  bench/bench_fleet.py ``--burst``, docs/benchmarks.md).
"""

from __future__ import annotations

import ipaddress
import json
import time
from datetime import UTC, datetime
from functools import partial

import pytest

from pbxfw.domain.bans import Ban
from pbxfw.ips.events import BanDecision
from pbxfw.storage.repository import Store
from pbxfw.usecases.bans import BanService
from tests.agent.test_agent_kernel import wait_until
from tests.fleet.nodes import Fleet, nowhere
from tests.fleet.test_propagation_kernel import everywhere

pytestmark = pytest.mark.kernel


def test_bans_rm_lifts_a_ban_from_every_kernel(fleet: Fleet) -> None:
    a, b, c = fleet.nodes
    a.fail("198.51.100.20", 5)
    took = wait_until(lambda: everywhere([a, b, c], "198.51.100.20"), 10, step=0.02)
    assert took is not None, b.log.read_text()[-3000:]
    listed = fleet.pbxfw("bans", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    ban = next(x for x in json.loads(listed.stdout) if x["address"] == "198.51.100.20")
    assert (ban["origin"], ban["node"], ban["site"]) == ("jail:asterisk", "a", "default")
    table = fleet.pbxfw("bans", "list")
    assert "jail:asterisk at a" in table.stdout
    # As node b sees it: received from a.
    at_b = fleet.pbxfw("bans", "list", "--node", "b", "--json")
    assert at_b.returncode == 0, at_b.stderr
    ban = next(x for x in json.loads(at_b.stdout) if x["address"] == "198.51.100.20")
    assert ban["origin"] == "fleet:a"
    unknown = fleet.pbxfw("bans", "list", "--node", "z")
    assert unknown.returncode == 2 and "no node 'z'" in unknown.stderr, unknown.stderr

    removed = fleet.pbxfw("bans", "rm", "198.51.100.20")
    assert removed.returncode == 0, removed.stderr
    took = wait_until(lambda: nowhere([a, b, c], "198.51.100.20"), 10, step=0.02)
    assert took is not None, [n.banned() for n in fleet.nodes]


def test_ips_share_off_keeps_a_ban_at_its_node_until_shared_again(fleet: Fleet) -> None:
    a, b, c = fleet.nodes
    assert fleet.pbxfw("settings", "set", "ips_share=off").returncode == 0
    a.fail("198.51.100.21", 5)
    took = wait_until(lambda: "198.51.100.21" in a.banned(), 10, step=0.02)
    assert took is not None, a.log.read_text()[-3000:]
    # An administrator's ban made after it, to know b and c have read past it.
    added = fleet.pbxfw("bans", "add", "203.0.113.21", "--jail", "asterisk")
    assert added.returncode == 0, added.stderr
    admin = partial(everywhere, [a, b, c], "203.0.113.21")
    took = wait_until(admin, 10, step=0.02)
    assert took is not None, b.log.read_text()[-3000:]
    assert nowhere([b, c], "198.51.100.21")

    assert fleet.pbxfw("settings", "set", "ips_share=site").returncode == 0
    took = wait_until(lambda: everywhere([b, c], "198.51.100.21"), 10, step=0.02)
    assert took is not None, b.log.read_text()[-3000:]


def decision(address: str, now: datetime) -> BanDecision:
    return BanDecision(
        host=ipaddress.ip_address(address),
        jail="asterisk",
        scope=frozenset({"sip", "iax", "ajam"}),
        time=now,
        seconds=3600,
        failures=5,
        first_failure=now,
        reason="burst",
        offence=1,
    )


def test_a_burst_of_10000_bans_at_one_node_reaches_the_other_kernels(fleet: Fleet) -> None:
    _a, b, c = fleet.nodes
    now = datetime.now(UTC)
    first = int(ipaddress.ip_address("100.64.0.1"))
    bans = [
        Ban.from_decision(
            decision(str(ipaddress.ip_address(first + i)), now), now.timestamp(), "a", "default"
        )
        for i in range(10_000)
    ]
    store = Store.open(fleet.db)
    try:
        start = time.monotonic()
        BanService(store).record(bans)  # what a's agent does with a batch it decided
        stored = time.monotonic() - start
    finally:
        store.close()
    took = wait_until(lambda: min(b.set_size(), c.set_size()) >= 10_000, 30, step=0.1)
    elapsed = time.monotonic() - start
    assert took is not None, (b.set_size(), c.set_size(), b.log.read_text()[-3000:])
    print(f"10,000 bans: stored in {stored:.2f} s, in b's and c's kernels after {elapsed:.2f} s")
    # One incremental read and one netlink batch at b: "ban sets: 10000 added".
    assert "ban sets: 10000 added" in b.log.read_text(), b.log.read_text()[-3000:]
