"""Sites (issue 16): two real agents in two sites, each keeping its own site's rules.

Node a runs ``pbxfw agent`` in the site ``default`` and node b with
``PBXFW_SITE=b``, each in its own network namespace, on one real PostgreSQL
database (tests/fleet/nodes.py). Each kernel gets its own site's networks
and never the other's; a configuration applied for site b is loaded by b at
once and does not make a reload; the node rows carry their sites; a site
with a node cannot be removed; an agent named to an unknown site exits 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.agent.test_agent_kernel import wait_until
from tests.fleet.nodes import PBXFW, Fleet, Node
from tests.kernel.lab import Lab, require_kernel

pytestmark = pytest.mark.kernel

OFFICE_A, OFFICE_B = "192.0.2.0/24", "198.18.7.0/24"


def loads(node: Node) -> int:
    """How many times ``node``'s agent loaded a configuration into its kernel."""
    return node.log.read_text().count("applied configuration revision")


def loaded_once(node: Node) -> bool:
    return loads(node) >= 1


def listening(node: Node) -> bool:
    return "listening for" in node.log.read_text()


@pytest.fixture
def fleet(tmp_path: Path, db_url: str) -> Iterator[Fleet]:
    require_kernel()
    with Lab(f"fs{os.getpid() % 10000}") as lab:
        fleet = Fleet(lab, db_url, tmp_path)
        try:
            fleet.configure()
            fleet.configure(site="b")
            for site, office in (("default", OFFICE_A), ("b", OFFICE_B)):
                added = fleet.pbxfw(
                    "--site", site, "network", "add", "Office", office, "--allow", "ssh"
                )
                assert added.returncode == 0, added.stderr
            fleet.start(fleet.add("a"))
            fleet.start(fleet.add("b"), site="b")
            for node in fleet.nodes:
                took = wait_until(partial(listening, node), 15, 0.05)
                assert took is not None, node.log.read_text()[-3000:]
                took = wait_until(partial(loaded_once, node), 15, 0.05)
                assert took is not None, node.log.read_text()[-3000:]
            yield fleet
        finally:
            fleet.close()


def test_each_node_keeps_its_own_sites_rules(fleet: Fleet) -> None:
    a, b = fleet.nodes
    # The same network name in both sites, each with its own subnet.
    assert OFFICE_A in a.ruleset() and OFFICE_B not in a.ruleset()
    assert OFFICE_B in b.ruleset() and OFFICE_A not in b.ruleset()

    nodes = {n["name"]: n for n in json.loads(fleet.pbxfw("node", "list", "--json").stdout)}
    assert (nodes["a"]["site"], nodes["b"]["site"]) == ("default", "b")

    # default applied on a: a loads it (b does not).
    b_loads = loads(b)
    applied = fleet.pbxfw("apply", "--netns", a.ns, "--json")
    assert applied.returncode == 0, applied.stderr
    line = f"applied configuration revision {json.loads(applied.stdout)['revision']} "
    took = wait_until(lambda: line in a.log.read_text(), 5, 0.02)
    assert took is not None, a.log.read_text()[-3000:]
    time.sleep(0.5)
    assert loads(b) == b_loads, b.log.read_text()[-3000:]

    # A change applied for site b: b loads it at once; a does not reload.
    a_loads = loads(a)
    added = fleet.pbxfw("--site", "b", "network", "add", "Lab", "203.0.113.0/24", "--allow", "ssh")
    assert added.returncode == 0, added.stderr
    applied = fleet.pbxfw("--site", "b", "apply", "--netns", b.ns, "--json")
    assert applied.returncode == 0, applied.stderr
    written = time.monotonic()
    revision = json.loads(applied.stdout)["revision"]
    line = f"applied configuration revision {revision} "
    took = wait_until(lambda: line in b.log.read_text(), 5, 0.02)
    assert took is not None, b.log.read_text()[-3000:]
    assert time.monotonic() - written <= 1.0
    assert "203.0.113.0/24" in b.ruleset()
    time.sleep(0.5)  # a's notifications (if any) would have been read by now
    assert loads(a) == a_loads, a.log.read_text()[-3000:]
    assert "203.0.113.0/24" not in a.ruleset() and OFFICE_A in a.ruleset()

    # Both report their own site's revision: up, not drifted.
    def both_up() -> bool:
        listed = json.loads(fleet.pbxfw("node", "list", "--json").stdout)
        return all(n["state"] == "up" for n in listed) and len(listed) == 2

    took = wait_until(both_up, 15, 0.5)
    assert took is not None, fleet.pbxfw("node", "list", "--json").stdout

    # Site b has a node: it cannot be removed.
    refused = fleet.pbxfw("site", "rm", "b")
    assert refused.returncode == 2 and "node" in refused.stderr, refused.stderr


def test_an_agent_of_an_unknown_site_exits_2(fleet: Fleet) -> None:
    environ = {**os.environ, "PBXFW_STATE_DIR": str(fleet.folder / "ghost-state")}
    ns = fleet.nodes[0].ns
    result = subprocess.run(
        [PBXFW, "agent", "--site", "ghost", "--netns", ns, "--node", "g", "--db", fleet.db],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )
    assert result.returncode == 2, result.stderr
    assert "--site: there is no site 'ghost'" in result.stderr
    nodes = json.loads(fleet.pbxfw("node", "list", "--json").stdout)
    assert sorted(n["name"] for n in nodes) == ["a", "b"]  # it never registered
